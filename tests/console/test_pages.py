"""The console over plain HTTP (no browser): sign-in, every page for every role, role checks by URL, the
usage export and the playground stream. The browser tests (test_browser.py) drive the same pages in
Chromium."""

from __future__ import annotations

import csv
import io
import re

import httpx
import orjson
from openai import OpenAI

from tests.console.conftest import PASSWORD

ADMIN_PAGES = ["/console/people", "/console/audit", "/console/secrets", "/console/stack"]
USER_PAGES = [
    "/console/",
    "/console/usage",
    "/console/usage?range=1h",
    "/console/usage?range=365d&by=user",
    "/console/requests",
    "/console/keys",
    "/console/models",
    "/console/knowledge",
    "/console/playground",
    "/console/account",
]


def _traffic(lab) -> None:
    for who in ("root", "usr"):
        client = OpenAI(base_url=f"{lab.gw.url}/v1", api_key=lab.keys[who])
        for model in ("gpt", "local", "mystery"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hi {who}"}])
    lab.gw.flush()


def test_root_redirects_and_pages_need_sign_in(lab):
    r = httpx.get(f"{lab.gw.url}/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    r = httpx.get(f"{lab.gw.url}/console/keys", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=/console/keys")
    login = httpx.get(f"{lab.gw.url}/console/login")
    assert login.status_code == 200 and 'name="password"' in login.text


def test_wrong_password_is_a_401_page_and_first_admin_hint_only_on_a_new_lab(lab):
    r = httpx.post(f"{lab.gw.url}/console/login", data={"username": "root", "password": "nope"})
    assert r.status_code == 401 and "wrong username or password" in r.text
    assert 'id="first-admin"' not in r.text  # several users: not a new lab


def test_every_page_renders_for_admin(lab):
    _traffic(lab)
    with lab.signed_in("root") as c:
        for path in USER_PAGES + ADMIN_PAGES:
            r = c.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            assert "<main" in r.text
        overview = c.get("/console/").text
        assert "Requests/s" in overview and "gpt" in overview
        assert c.get("/console/overview/live").status_code == 200


def test_user_gets_403_pages_for_admin_pages_and_sees_only_own_data(lab):
    _traffic(lab)
    with lab.signed_in("usr") as c:
        for path in USER_PAGES:
            assert c.get(path).status_code == 200, path
        nav = c.get("/console/").text
        for path in ADMIN_PAGES:
            assert f'href="{path}"' not in nav
            r = c.get(path)
            assert r.status_code == 403 and "lacks permission" in r.text, path
        keys = c.get("/console/keys").text
        assert "usr-key" in keys and "root-key" not in keys and "eve-key" not in keys
        other = c.get(f"/console/keys?user={lab.users['root']}")
        assert other.status_code == 403
        assert c.get("/console/no-such-page").status_code == 404
        requests = c.get("/console/requests").text
        assert "root-key" not in requests and "usr-key" in requests


def test_analyst_sees_its_projects_usage_but_no_admin_page(lab):
    _traffic(lab)
    with lab.signed_in("ana") as c:
        for path in USER_PAGES:
            assert c.get(path).status_code == 200, path
        for path in ADMIN_PAGES:
            assert c.get(path).status_code == 403, path
        body = c.get("/console/usage/export?range=24h&format=json").json()
        assert {r["name"] for r in body["breakdowns"]["user"]} == {"root", "usr"}  # the project's members
        assert c.get("/console/requests/999999").status_code == 404
        assert c.get("/console/requests/not-a-number").status_code == 404


def test_request_detail_of_someone_else_is_404(lab):
    _traffic(lab)
    with lab.signed_in("root") as c:
        page = c.get("/console/requests?key=" + lab.key_ids["root"]).text
    rid = page.split('href="/console/requests/')[1].split('"')[0]
    with lab.signed_in("root") as c:
        assert c.get(f"/console/requests/{rid}").status_code == 200
    with lab.signed_in("usr") as c:
        assert c.get(f"/console/requests/{rid}").status_code == 404


def test_usage_names_local_models_apart_and_unpriced_never_zero(lab):
    _traffic(lab)
    with lab.signed_in("root") as c:
        body = c.get("/console/usage/export?range=24h&format=json").json()
        by_model = {r["name"]: r for r in body["breakdowns"]["model"]}
        assert by_model["mystery"]["cost_usd"] is None and by_model["mystery"]["unpriced"] == 2
        assert by_model["local"]["cost_usd"] not in (None, "0")
        users = {r["name"] for r in body["breakdowns"]["user"]}
        assert users == {"root", "usr"}
        keys = {r["name"] for r in body["breakdowns"]["key"]}
        assert keys == {"root-key", "usr-key"}
        local = [r for r in body["breakdowns"]["deployment"] if r["local"]]
        assert len(local) == 1 and local[0]["requests"] == 2
        assert sum(p["requests"] for p in body["series"]) == 6
        text = c.get("/console/usage/export?range=24h&format=csv&by=user").text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["name"] for r in rows} == {"root", "usr"}
        assert c.get("/console/usage?range=2y").status_code == 404
        page = c.get("/console/usage?range=24h&by=model").text
        assert "Local models" in page
    with lab.signed_in("usr") as c:
        body = c.get("/console/usage/export?range=24h&format=json").json()
        assert {r["name"] for r in body["breakdowns"]["user"]} == {"usr"}


def test_playground_streams_with_turn_stats(lab):
    with lab.signed_in("usr") as c:
        page = c.get("/console/playground").text
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        body = {"model": "gpt", "messages": [{"role": "user", "content": "hello there"}]}
        assert c.post("/console/playground/chat", json=body).status_code == 403  # no CSRF token
        r = c.post("/console/playground/chat", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        events = [b for b in r.text.split("\n\n") if b]
        text = "".join(
            (orjson.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            for e in events
            if e.startswith("data: ")
        )
        assert text == "echo: hello there"
        stats = orjson.loads(events[-1].split("data: ", 1)[1])
        assert events[-1].startswith("event: stats")
        assert (
            stats["completion_tokens"] == 3 and stats["cost_usd"] is not None and stats["ttft_ms"] is not None
        )
        bad = c.post("/console/playground/chat", json={"model": "gpt"}, headers={"X-CSRF-Token": csrf})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    lab.gw.flush()  # the turn is in the ledger, as the user's, with the cost the stats said
    with lab.signed_in("usr") as c:
        rows = c.get("/console/usage/export?range=1h&format=json").json()["breakdowns"]["model"]
    assert [(r["name"], r["requests"], r["cost_usd"]) for r in rows] == [("gpt", 1, stats["cost_usd"])]


def test_change_password_and_logout(lab):
    with lab.signed_in("eve") as c:
        page = c.get("/console/account").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        new = "another-long-password"
        form = {"csrf": csrf, "current": "wrong", "new": new, "again": new}
        assert c.post("/console/account/password", data=form).status_code == 400
        form["current"] = PASSWORD
        assert c.post("/console/account/password", data=form).status_code == 200
        r = c.post("/console/logout", data={"csrf": csrf})
        assert r.status_code == 303
        assert c.get("/console/", follow_redirects=False).status_code == 303
    r = httpx.post(f"{lab.gw.url}/console/login", data={"username": "eve", "password": new})
    assert r.status_code == 303


def test_docs_and_redoc_are_served_offline_and_static_is_gzipped(lab):
    docs = httpx.get(f"{lab.gw.url}/docs").text
    assert "/console/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    redoc = httpx.get(f"{lab.gw.url}/redoc").text
    assert "/console/static/vendor/redoc/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
    for path in (
        "/console/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/console/static/vendor/redoc/redoc.standalone.js",
        "/console/static/vendor/htmx/htmx.min.js",
    ):
        r = httpx.get(f"{lab.gw.url}{path}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip", path
    # Never on the hot path.
    r = httpx.get(
        f"{lab.gw.url}/v1/models",
        headers={"Authorization": f"Bearer {lab.keys['usr']}", "Accept-Encoding": "gzip"},
    )
    assert r.status_code == 200 and "content-encoding" not in r.headers


def test_first_load_of_the_overview_is_small(lab):
    """The overview and everything it loads, as transferred (gzip): under 250 KB."""
    with lab.signed_in("root") as c:
        page = c.get("/console/", headers={"Accept-Encoding": "gzip"})
        assert page.headers.get("content-encoding") == "gzip"
        total = page.num_bytes_downloaded
        assets = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page.text)
        assert len(assets) >= 4, assets
        for path in assets:
            r = c.get(path, headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200, path
            total += r.num_bytes_downloaded
    assert total <= 250_000, total


def test_first_admin_hint_on_a_new_lab(openai_upstream, make_gateway):
    gw = make_gateway({"model_list": []})
    state = gw.app.state
    assert state.access.bootstrap_admin() is not None  # as `ailab up` does on a new lab
    page = httpx.get(f"{gw.url}/console/login").text
    assert 'id="first-admin"' in page and "ailab users passwd admin" in page


def test_overview_poll_after_sign_out_sends_htmx_to_sign_in(lab):
    r = httpx.get(f"{lab.gw.url}/console/overview/live", headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["hx-redirect"] == "/console/login"


def test_names_are_escaped_and_next_never_leaves_the_console(lab):
    state = lab.state
    evil = '<script>alert("x")</script>'
    uid = state.access.identity.create_user("test", evil, "user", PASSWORD).id
    state.access.keys.create("test", user=uid, name='<img src=x onerror="alert(1)">')
    state.access.cache.load()
    with lab.signed_in("root") as c:
        for path in ("/console/people", "/console/keys"):
            text = c.get(path).text
            assert "<script>alert" not in text and "<img src=x" not in text, path
            assert "&lt;" in text
        assert c.get("/console/login?next=/console/usage").headers["location"] == "/console/usage"
    r = httpx.post(
        f"{lab.gw.url}/console/login",
        data={"username": "root", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cross = httpx.post(
        f"{lab.gw.url}/console/login",
        data={"username": "root", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
