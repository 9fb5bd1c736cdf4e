"""The admin API: every role × every route (allowed vs 403), project isolation, sessions and CSRF, login
throttling, and keys that stop working everywhere when revoked."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from ailab.access.policy import BUILTIN_ROLES
from tests.access.conftest import ACTOR, Lab

ROLE_OF = {"root": "admin", "ana": "analyst", "usr": "user"}


def _target_user(lab: Lab) -> str:
    return lab.access.identity.create_user(ACTOR, f"t{time.monotonic_ns()}", "user").id


def _target_project(lab: Lab) -> str:
    return lab.access.identity.create_project(ACTOR, f"p{time.monotonic_ns()}").id


def _target_secret(lab: Lab) -> str:
    name = f"T{time.monotonic_ns()}"
    lab.gw.app.state.secret_store(actor=ACTOR).set(name, "to-delete")
    return name


def _own_key(lab: Lab, who: str) -> str:
    key, _ = lab.access.keys.create(ACTOR, user=lab.users[who])
    lab.refresh()
    return key.id


# (method, path, body, permission) — a factory per route so destructive calls get fresh targets.
def routes(lab: Lab, who: str) -> list[tuple[str, str, dict | None, str]]:
    a = lab.projects["alpha"]
    return [
        ("GET", "/api/me", None, "authenticated"),
        ("POST", "/api/auth/logout", None, "authenticated"),
        ("GET", "/api/users", None, "users.manage"),
        ("POST", "/api/users", {"username": f"n{time.monotonic_ns()}"}, "users.manage"),
        ("GET", f"/api/users/{lab.users['usr']}", None, "users.manage"),
        ("PATCH", f"/api/users/{_target_user(lab)}", {"role": "analyst"}, "users.manage"),
        ("DELETE", f"/api/users/{_target_user(lab)}", None, "users.manage"),
        ("PUT", f"/api/users/{_target_user(lab)}/limits", {"rpm": 10}, "budgets.manage"),
        ("GET", "/api/projects", None, "projects.read.own"),
        ("POST", "/api/projects", {"name": f"n{time.monotonic_ns()}"}, "projects.manage"),
        ("GET", f"/api/projects/{a}", None, "projects.read.own"),
        ("DELETE", f"/api/projects/{_target_project(lab)}", None, "projects.manage"),
        ("PUT", f"/api/projects/{_target_project(lab)}/members/{lab.users['usr']}", None, "projects.manage"),
        ("DELETE", f"/api/projects/{a}/members/{_target_user(lab)}", None, "projects.manage"),
        ("PUT", f"/api/projects/{_target_project(lab)}/limits", {"max_budget_usd": "5"}, "budgets.manage"),
        ("GET", "/api/keys", None, "keys.manage.own"),
        ("POST", "/api/keys", {"name": "k"}, "keys.manage.own"),
        ("DELETE", f"/api/keys/{_own_key(lab, who)}", None, "keys.manage.own"),
        ("PUT", f"/api/keys/{_own_key(lab, who)}/limits", {"tpm": 100}, "budgets.manage"),
        ("GET", "/api/usage", None, "usage.read.own"),
        ("GET", "/api/audit", None, "audit.read"),
        ("GET", "/api/audit/verify", None, "audit.read"),
        ("GET", "/api/secrets", None, "secrets.manage"),
        ("PUT", "/api/secrets/MATRIX_A", {"value": "v-1"}, "secrets.manage"),
        ("POST", "/api/secrets/MATRIX_A/rotate", {"value": "v-2"}, "secrets.manage"),
        ("DELETE", f"/api/secrets/{_target_secret(lab)}", None, "secrets.manage"),
        *knowledge_routes(lab),
    ]


def _target_collection(lab: Lab) -> str:
    name = f"k{time.monotonic_ns()}"
    with lab.client("root") as c:
        r = c.post("/v1/knowledge/collections", json={"name": name, "project_id": lab.projects["alpha"]})
        assert r.status_code == 201, r.text
    return name


def _target_document(lab: Lab, collection: str) -> str:
    with lab.client("root") as c:
        docs = {"documents": [{"name": f"d{time.monotonic_ns()}.txt", "text": "to delete"}]}
        c.post(f"/v1/knowledge/collections/{collection}/documents", json=docs)
        return c.get(f"/v1/knowledge/collections/{collection}/documents").json()[-1]["id"]


def _target_eval(lab: Lab, collection: str) -> str:
    with lab.client("root") as c:
        body = {"questions": [{"question": "hello?", "sources": ["a.txt"]}], "mode": "sparse"}
        r = c.post(f"/v1/knowledge/collections/{collection}/eval", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])


def knowledge_routes(lab: Lab) -> list[tuple[str, str, dict | None, str]]:
    a, kc = lab.projects["alpha"], _target_collection(lab)
    base = f"/v1/knowledge/collections/{kc}"
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    return [
        ("GET", "/v1/knowledge/collections", None, "knowledge.use"),
        (
            "POST",
            "/v1/knowledge/collections",
            {"name": f"n{time.monotonic_ns()}", "project_id": a},
            "knowledge.manage",
        ),
        ("GET", base, None, "knowledge.use"),
        ("DELETE", f"/v1/knowledge/collections/{_target_collection(lab)}", None, "knowledge.manage"),
        ("GET", f"{base}/documents", None, "knowledge.use"),
        (
            "POST",
            f"{base}/documents",
            {"documents": [{"name": "a.txt", "text": "hello"}]},
            "knowledge.manage",
        ),
        ("DELETE", f"{base}/documents/{_target_document(lab, kc)}", None, "knowledge.manage"),
        ("POST", f"{base}/search", {"query": "hello"}, "knowledge.use"),
        ("POST", f"{base}/ask", {"question": "hello?"}, "knowledge.use"),
        ("POST", f"/v1/knowledge/{kc}/chat/completions", chat, "knowledge.use"),
        (
            "POST",
            f"{base}/eval",
            {"questions": [{"question": "hello?", "sources": ["a.txt"]}], "mode": "sparse", "keep": False},
            "knowledge.manage",
        ),
        ("GET", f"{base}/evals", None, "knowledge.use"),
        ("GET", f"{base}/evals/{_target_eval(lab, kc)}", None, "knowledge.use"),
    ]


def allowed(role: str, permission: str) -> bool:
    if permission in ("authenticated", "public"):
        return True
    perms = BUILTIN_ROLES[role]
    wider = {
        "usage.read.own": {"usage.read.project", "usage.read.all"},
        "keys.manage.own": {"keys.manage.all"},
        "projects.read.own": {"projects.manage"},
        "knowledge.use": {"knowledge.manage"},
    }
    return "*" in perms or permission in perms or bool(wider.get(permission, set()) & perms)


def test_permission_matrix_every_role_every_route(lab):
    covered: set[tuple[str, str]] = set()
    for who, role in ROLE_OF.items():
        with lab.client(who) as c:
            for method, path, body, permission in routes(lab, who):
                r = c.request(method, path, json=body)
                expect = allowed(role, permission)
                assert (r.status_code != 403) == expect, (role, method, path, r.status_code, r.text)
                assert r.status_code != 401, (role, path)
                if expect:
                    assert r.status_code < 400, (role, method, path, r.status_code, r.text)
                covered.add((method, _template(lab, path)))
    covered.add(("POST", "/api/auth/login"))  # public: exercised by the session and throttling tests
    # public: the SSO routes, exercised against a real provider in test_sso_oidc.py
    covered |= {
        ("GET", "/api/auth/providers"),
        ("GET", "/auth/oidc/login"),
        ("GET", "/auth/oidc/callback"),
        ("POST", "/api/auth/oidc/device"),
        ("POST", "/api/auth/oidc/device/token"),
    }
    # apps.use / apps.manage / knowledge.use per role: tests/apps/test_serving.py (a lab with apps declared)
    covered |= {
        ("GET", "/api/apps"),
        ("GET", "/api/apps/{name}"),
        ("GET", "/api/apps/{name}/export"),
        ("POST", "/api/apps/dify/retrieval"),
    }
    # The gateway's /v1 routes are in the document too; their permission is checked in tests/gateway.
    paths = [(p, ops) for p, ops in _spec(lab)["paths"].items() if _admin_route(p)]
    declared = {(m.upper(), path) for path, ops in paths for m in ops}
    assert declared <= covered, f"routes missing from the matrix: {sorted(declared - covered)}"


def _admin_route(path: str) -> bool:
    return not path.startswith("/v1/") or path.startswith("/v1/knowledge/")


def _spec(lab: Lab) -> dict:
    return httpx.get(f"{lab.gw.url}/openapi.json").json()


def _template(lab: Lab, path: str) -> str:
    import re

    for template in _spec(lab)["paths"]:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    return path


def test_every_route_declares_its_permission(lab):
    spec = httpx.get(f"{lab.gw.url}/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("x-permission"), f"{method.upper()} {path} declares no permission"


def test_no_credentials_is_401(lab):
    assert httpx.get(f"{lab.gw.url}/api/users").status_code == 401
    assert httpx.get(f"{lab.gw.url}/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_project_isolation_usage_and_keys(lab):
    for who in ("usr", "bob"):
        client = openai.OpenAI(base_url=lab.gw.base_url, api_key=lab.keys[who], max_retries=0)
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": f"hi from {who}"}])
    lab.gw.flush()
    alpha, beta = lab.projects["alpha"], lab.projects["beta"]
    with lab.client("ana") as c:  # analyst of alpha
        assert c.get("/api/usage", params={"project_id": beta}).status_code == 403
        assert sum(r["requests"] for r in c.get("/api/usage").json()) == 1
        assert [r["name"] for r in c.get("/api/usage", params={"by": "project"}).json()] == [alpha]
    with lab.client("bea") as c:  # analyst of beta sees only beta
        assert [r["name"] for r in c.get("/api/usage", params={"by": "project"}).json()] == [beta]
        assert c.get(f"/api/projects/{alpha}").status_code == 404  # as if it did not exist
        assert {p["id"] for p in c.get("/api/projects").json()} == {beta}
    with lab.client("usr") as c:  # a user sees only their own usage and keys
        assert [r["name"] for r in c.get("/api/usage", params={"by": "user"}).json()] == [lab.users["usr"]]
        assert c.get("/api/usage", params={"user_id": lab.users["bob"]}).status_code == 403
        keys = c.get("/api/keys").json()
        assert {k["user_id"] for k in keys} == {lab.users["usr"]}
        assert c.get("/api/keys", params={"user_id": lab.users["bob"]}).status_code == 403
        bob_key = lab.access.keys.keys(user_id=lab.users["bob"])[0].id
        assert c.delete(f"/api/keys/{bob_key}").status_code == 404
        assert c.post("/api/keys", json={"project_id": beta}).status_code == 403


def test_cli_isolation_with_a_key(lab):
    import json

    from typer.testing import CliRunner

    from ailab.cli import app

    for who in ("usr", "bob"):
        openai.OpenAI(base_url=lab.gw.base_url, api_key=lab.keys[who], max_retries=0).chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "x"}]
        )
    lab.gw.flush()
    args = [
        "usage",
        "--config",
        str(lab.gw.config_path),
        "--data-dir",
        str(lab.gw.data_dir),
        "--format",
        "json",
    ]
    mine = CliRunner().invoke(app, [*args, "--by", "user", "--key", lab.keys["bob"]])
    assert [r["user"] for r in json.loads(mine.stdout)] == [lab.users["bob"]]
    denied = CliRunner().invoke(app, [*args, "--key", lab.keys["bea"], "--project", lab.projects["alpha"]])
    assert denied.exit_code == 2 and "not a member" in denied.output
    everything = CliRunner().invoke(app, [*args, "--by", "user"])  # the local operator
    assert len(json.loads(everything.stdout)) == 2


def test_key_scopes_models_and_ledger_attribution(lab):
    key, token = lab.access.keys.create(
        ACTOR, user=lab.users["usr"], project=lab.projects["alpha"], models=["gpt"]
    )
    lab.refresh()
    client = openai.OpenAI(base_url=lab.gw.base_url, api_key=token, max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    lab.gw.flush()
    from ailab.ledger import usage_report

    rows = usage_report(lab.gw.app.state.engine, "key")
    # The refused request (404) is a row of this key too, as an error.
    assert [(r.name, r.requests, r.errors) for r in rows] == [(key.id, 2, 1)]
    by_project = usage_report(lab.gw.app.state.engine, "project")
    assert [r.name for r in by_project] == [lab.projects["alpha"]]


def test_revocation_reaches_the_gateway_within_a_second(lab):
    client = openai.OpenAI(base_url=lab.gw.base_url, api_key=lab.keys["usr"], max_retries=0)
    client.models.list()
    kid = lab.access.keys.keys(user_id=lab.users["usr"])[0].id
    lab.access.keys.revoke(ACTOR, kid)  # as another process would: only the database changes
    t0 = time.monotonic()
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() - t0 < 1.0, "revoked key still accepted after 1 s"
        time.sleep(0.02)


def test_session_login_csrf_and_logout(lab):
    c = httpx.Client(base_url=lab.gw.url)
    r = c.post("/api/auth/login", json={"username": "ana", "password": "correct-horse-battery"})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    csrf = r.json()["csrf_token"]
    assert c.get("/api/me").json()["role"] == "analyst"
    assert c.post("/api/keys", json={"name": "no-csrf"}).status_code == 403
    made = c.post("/api/keys", json={"name": "with-csrf"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201 and made.json()["key"].startswith("sk-ailab-")
    c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert c.get("/api/me").status_code == 401


def test_login_brute_force_is_throttled(lab):
    c = httpx.Client(base_url=lab.gw.url)
    for _ in range(5):
        assert (
            c.post("/api/auth/login", json={"username": "usr", "password": "wrong-password-x"}).status_code
            == 401
        )
    blocked = c.post("/api/auth/login", json={"username": "usr", "password": "correct-horse-battery"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    unknown = c.post("/api/auth/login", json={"username": "nobody", "password": "whatever-long"})
    assert unknown.status_code in (401, 429) and "nobody" not in unknown.text.replace('"nobody"', "")


def test_validation_errors_name_the_field(lab):
    with lab.client("root") as c:
        r = c.post("/api/users", json={"username": "x", "role": "pilot"})
        assert r.status_code == 400 and "pilot" in r.json()["error"]["message"]
        r = c.put(f"/api/users/{lab.users['usr']}/limits", json={"budget_duration": "hourly"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "budget_duration"
        assert c.post("/api/users", json={"username": "usr"}).status_code == 409
        assert c.get("/api/users/usr_missing").status_code == 404


def test_a_role_without_models_use_cannot_call_models(openai_upstream, make_gateway):
    from tests.conftest import UPSTREAM_KEY, model

    gw = make_gateway(
        {
            "model_list": [model("gpt", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "access": {"roles": {"auditor": ["audit.read"]}},
        }
    )
    access = gw.app.state.access
    uid = access.identity.create_user(ACTOR, "aud", "auditor").id
    _, token = access.keys.create(ACTOR, user=uid)
    access.cache.load()
    client = openai.OpenAI(base_url=gw.base_url, api_key=token, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert "lacks permission models.use" in exc.value.message
    assert httpx.get(f"{gw.url}/api/audit", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_first_up_creates_an_admin_once(tmp_path, make_gateway):
    from ailab.cli.up_cmd import _bootstrap
    from ailab.config import load_config

    loaded = load_config(None, tmp_path / "data-0")  # make_gateway's first data dir
    username, password = _bootstrap(loaded)
    assert username == "admin" and len(password) >= 16
    assert _bootstrap(loaded) is None  # never again, never a default password
    gw = make_gateway({})
    r = httpx.post(f"{gw.url}/api/auth/login", json={"username": "admin", "password": password})
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    entries = gw.app.state.access.audit.entries()
    assert any(e.action == "user.create" and e.detail.get("role") == "admin" for e in entries)
    assert all(password not in str(e.detail) for e in entries)


def test_a_denial_is_audited(lab):
    with lab.client("usr") as c:
        assert c.get("/api/users").status_code == 403
    denied = lab.access.audit.entries(action="access.denied")
    assert denied and denied[0].target == "users.manage"


def test_a_new_key_works_at_once_and_a_revoked_one_stops_at_once(lab):
    with lab.client("usr") as c:
        made = c.post("/api/keys", json={"name": "fresh"})
        assert made.status_code == 201, made.text
        fresh = {"Authorization": f"Bearer {made.json()['key']}"}
        assert httpx.get(f"{lab.gw.url}/v1/models", headers=fresh).status_code == 200
        assert c.delete(f"/api/keys/{made.json()['id']}").status_code == 200
        assert httpx.get(f"{lab.gw.url}/v1/models", headers=fresh).status_code == 401
