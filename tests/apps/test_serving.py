"""Apps served by the gateway, driven by the real `openai` SDK: `model="app:NAME"` on /v1/chat/completions
and the app's own route /v1/apps/NAME/chat/completions, unary and streamed; a RAG app's citations are the
chunks it retrieved; every call is ledgered with its app; keys of another project get a 404."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import NotFoundError, OpenAI

from ailab.ledger import usage_report
from tests.conftest import MASTER, UPSTREAM_KEY, model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"
DOCS = [
    (
        "secrets.md",
        "# Secrets\n\nRotate a secret with `ailab secrets set NAME`; the gateway picks the new "
        "value up within a second, without a restart.",
    ),
    (
        "backup.md",
        "# Backups\n\nRun `ailab backup` to write an archive of the data directory; restore it "
        "with `ailab restore ARCHIVE`.",
    ),
    (
        "keys.md",
        "# Keys\n\nCreate a virtual key with `ailab keys create --user NAME`; revoke it with "
        "`ailab keys revoke ID`.",
    ),
]
OWNED = {"name": "team-notes", "model": "chat", "system_prompt": "Team alpha helper.", "project": "alpha"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    """One lab for the module: a chat upstream, the built-in embedder, the example apps and one app
    owned by project alpha; the `docs` collection filled with three small documents."""
    from tests.conftest import Gateway, start_upstream
    from tests.upstreams import openai_server

    up = start_upstream("openai", openai_server.make_app)
    tmp = tmp_path_factory.mktemp("apps")
    import yaml

    from ailab.config import load_config
    from ailab.server import create_app
    from tests.upstreams.harness import ServerThread

    cfg = {
        "model_list": [
            model("chat", "openai/gpt-4o-mini", f"{up.url}/v1", api_key=UPSTREAM_KEY),
            model("embed", "local/all-MiniLM-L6-v2", "local://", model_info={"mode": "embedding"}),
        ],
        "general_settings": {"master_key": MASTER},
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.02},
        "knowledge": {"embedding_model": "embed", "chat_model": "chat"},
        "apps": [OWNED],
        "apps_dir": str(EXAMPLES),
    }
    path = tmp / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    app = create_app(load_config(path, tmp / "data"))
    gw = Gateway(app, ServerThread(app).start(), path, tmp / "data")
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=300)
    schema = (EXAMPLES / "data" / "shop-schema.md").read_text()  # shipped with the example apps
    for coll, docs in (("docs", DOCS), ("sql-schema", [("shop-schema.md", schema)])):
        made = admin.post("/v1/knowledge/collections", json={"name": coll})
        assert made.status_code == 201, made.text
        body = {"documents": [{"name": n, "text": t} for n, t in docs]}
        filled = admin.post(f"/v1/knowledge/collections/{coll}/documents", json=body)
        assert filled.status_code in (200, 201), filled.text
    yield gw, up, admin
    admin.close()
    gw.stop()
    up.server.stop()


def sdk(base_url: str, key: str = MASTER) -> OpenAI:
    return OpenAI(base_url=base_url, api_key=key, max_retries=0)


def search_ids(admin: httpx.Client, query: str) -> list[int]:
    r = admin.post("/v1/knowledge/collections/docs/search", json={"query": query, "k": 5})
    return [h["chunk_id"] for h in r.json()["data"]]


QUESTION = "How do I rotate a secret? [1]"  # the echo upstream repeats it: the answer cites [1]


def test_rag_app_by_alias_answers_with_the_retrieved_chunks(lab) -> None:
    gw, up, admin = lab
    up.up.clear()
    r = sdk(gw.base_url).chat.completions.create(
        model="app:docs-qa", messages=[{"role": "user", "content": QUESTION}]
    )
    extra: dict[str, Any] = r.model_extra or {}
    assert extra["app"] == "docs-qa"
    cites = extra["citations"]
    assert [c["chunk_id"] for c in cites] == search_ids(admin, QUESTION)
    assert cites[0]["cited"] is True and cites[0]["collection"] == "docs"
    assert cites[0]["source"] == "secrets.md"  # the best chunk for the question
    sent = up.up.requests("/chat/completions")[-1]["body"]
    system = sent["messages"][0]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.1 and sent["max_tokens"] == 600
    assert system["role"] == "system" and "a developer running the lab" in system["content"]
    assert "[1] " in system["content"] and "ailab secrets set NAME" in system["content"]


def test_the_apps_own_route_and_streaming(lab) -> None:
    gw, _, admin = lab
    own = sdk(f"{gw.url}/v1/apps/docs-qa")
    r = own.chat.completions.create(
        model="ignored",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"variables": {"audience": "ops"}},
    )
    assert (r.model_extra or {})["app"] == "docs-qa" and r.choices[0].message.content
    for client, name in ((sdk(gw.base_url), "app:docs-qa"), (own, "x")):
        chunks = list(
            client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "rotate a secret" in text
        last = chunks[-1]
        assert last.choices == [] and (last.model_extra or {})["app"] == "docs-qa"
        cites = (last.model_extra or {})["citations"]
        assert [c["chunk_id"] for c in cites] == search_ids(admin, QUESTION) and cites[0]["cited"]


def test_structured_output_app_and_variables(lab) -> None:
    gw, up, _ = lab
    up.up.clear()
    r = sdk(gw.base_url).chat.completions.create(
        model="app:meeting-notes",
        messages=[{"role": "user", "content": "Ana: ship Friday. Ben: I write the notes."}],
        extra_body={"variables": {"team": "platform"}},
    )
    assert "citations" not in (r.model_extra or {})  # not a RAG app
    sent = up.up.requests("/chat/completions")[-1]["body"]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "meeting_notes"
    assert 'the team "platform"' in sent["messages"][0]["content"]


def test_bad_requests_are_precise_4xx(lab) -> None:
    gw, _, _ = lab
    client = sdk(gw.base_url)
    with pytest.raises(NotFoundError) as missing:
        client.chat.completions.create(model="app:nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "app_not_found"  # type: ignore[index]
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={
            "model": "app:meeting-notes",
            "messages": [{"role": "user", "content": "x"}],
            "variables": {"x": 1},
        },
    )
    assert r.status_code == 400 and "has no variable 'x'" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "variables"


def test_models_list_the_apps(lab) -> None:
    gw, _, _ = lab
    ids = {m.id for m in sdk(gw.base_url).models.list()}
    assert {"chat", "app:docs-qa", "app:meeting-notes", "app:sql-helper", "app:team-notes"} <= ids


def _key(admin: httpx.Client, project: str | None, models: list[str] | None = None) -> str:
    user = admin.post("/api/users", json={"username": f"u-{time.monotonic_ns()}"}).json()
    body: dict[str, Any] = {"user_id": user["id"], "models": models}
    if project:
        pid = admin.post("/api/projects", json={"name": project}).json()["id"]
        assert admin.put(f"/api/projects/{pid}/members/{user['id']}").status_code in (200, 201, 204)
        body["project_id"] = pid
    return str(admin.post("/api/keys", json=body).json()["key"])


def _wait_for_key(gw, key: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{gw.base_url}/models", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
        assert time.monotonic() < deadline, "the new key never became valid"


def test_an_app_of_another_project_is_a_404_and_a_key_scoped_to_the_app_works(lab) -> None:
    gw, _, admin = lab
    alpha = _key(admin, "alpha")
    beta = _key(admin, "beta")
    scoped = _key(admin, None, models=["app:docs-qa"])
    for key in (alpha, beta, scoped):
        _wait_for_key(gw, key)
    ask = [{"role": "user", "content": "hello"}]
    assert sdk(gw.base_url, alpha).chat.completions.create(model="app:team-notes", messages=ask).choices
    with pytest.raises(NotFoundError):
        sdk(gw.base_url, beta).chat.completions.create(model="app:team-notes", messages=ask)
    assert "app:team-notes" not in {m.id for m in sdk(gw.base_url, beta).models.list()}
    # The app grants its model group and its collection's embedder to a key scoped to it alone.
    r = sdk(gw.base_url, scoped).chat.completions.create(model="app:docs-qa", messages=ask)
    assert (r.model_extra or {})["citations"]
    with pytest.raises(NotFoundError):
        sdk(gw.base_url, scoped).chat.completions.create(model="chat", messages=ask)


def test_app_calls_are_ledgered_by_app(lab) -> None:
    gw, _, admin = lab
    client = sdk(gw.base_url)
    r = client.chat.completions.create(
        model="app:sql-helper", messages=[{"role": "user", "content": "Revenue per customer country?"}]
    )
    cites = (r.model_extra or {})["citations"]
    assert cites and {c["source"] for c in cites} == {"shop-schema.md"}
    assert r.choices and (r.model_extra or {})["app"] == "sql-helper"
    gw.flush()
    assert gw.app.state.engine is not None
    rows = {r.name: r for r in usage_report(gw.app.state.engine, "app", None)}
    assert rows["docs-qa"].requests >= 8  # the chat calls and their retrieval embeddings
    assert rows["meeting-notes"].requests >= 1 and rows["team-notes"].requests >= 1
    by_model = {r.name for r in usage_report(gw.app.state.engine, "model", None, where={"app": {"docs-qa"}})}
    assert by_model == {"chat", "embed"}  # the answer and the retrieval's embeddings
    api = admin.get("/api/usage", params={"by": "app", "since": "1h"}).json()
    assert {"docs-qa", "meeting-notes"} <= {r["name"] for r in api}


def test_difys_external_knowledge_call_gets_the_labs_chunks(lab) -> None:
    gw, _, admin = lab
    body = {
        "knowledge_id": "docs",
        "query": "restore an archive",
        "retrieval_setting": {"top_k": 2, "score_threshold": 0},
    }
    r = admin.post("/api/apps/dify/retrieval", json=body)
    assert r.status_code == 200
    records = r.json()["records"]
    assert 1 <= len(records) <= 2 and records[0]["title"]
    assert "ailab restore ARCHIVE" in records[0]["content"] and 0 <= records[0]["score"] <= 1
    missing = admin.post("/api/apps/dify/retrieval", json={**body, "knowledge_id": "nope"})
    assert missing.status_code == 404 and missing.json()["error_code"] == 2001
    anon = httpx.post(f"{gw.url}/api/apps/dify/retrieval", json=body)
    assert anon.status_code == 401


def test_admin_api_lists_shows_and_exports_by_permission(lab) -> None:
    gw, _, admin = lab
    names = {a["name"] for a in admin.get("/api/apps").json()}
    assert {"docs-qa", "meeting-notes", "sql-helper", "team-notes"} <= names
    assert admin.get("/api/apps/docs-qa").json()["knowledge"]["collections"] == ["docs"]
    dsl = admin.get("/api/apps/docs-qa/export", params={"to": "dify"})
    assert dsl.status_code == 200 and "version: 0.1.5" in dsl.text
    user = _key(admin, "gamma")  # role user: apps.use, not apps.manage
    _wait_for_key(gw, user)
    as_user = {"Authorization": f"Bearer {user}"}
    listed = {a["name"] for a in httpx.get(f"{gw.url}/api/apps", headers=as_user).json()}
    assert "docs-qa" in listed and "team-notes" not in listed  # alpha's app: not for gamma
    denied = httpx.get(f"{gw.url}/api/apps/docs-qa", headers=as_user)
    assert denied.status_code == 403 and "apps.manage" in denied.text
