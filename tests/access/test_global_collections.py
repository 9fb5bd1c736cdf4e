"""Lab-wide collections (no project) are written only by administrators or a role granted
`knowledge.manage.global`; `ailab ingest --project` files a new collection under a project."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from ailab.cli import app
from tests.access.conftest import ACTOR
from tests.conftest import MASTER

DOCS = {"documents": [{"name": "a.txt", "text": "lab wide handbook"}]}


def test_lab_wide_collections_need_knowledge_manage_global(lab):
    master = {"Authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=lab.gw.url, headers=master, timeout=60) as c:
        made = c.post("/v1/knowledge/collections", json={"name": "handbook"})
        assert made.status_code == 201 and made.json()["project_id"] is None
        assert c.post("/v1/knowledge/collections/handbook/documents", json=DOCS).status_code == 200
    with lab.client("ana") as c:  # analyst: knowledge.manage in alpha, nothing lab-wide
        assert (
            c.post("/v1/knowledge/collections/handbook/search", json={"query": "handbook"}).status_code == 200
        )
        assert c.post("/v1/knowledge/collections/handbook/documents", json=DOCS).status_code == 403
        docs = c.get("/v1/knowledge/collections/handbook/documents").json()
        assert c.delete(f"/v1/knowledge/collections/handbook/documents/{docs[0]['id']}").status_code == 403
        denied = c.delete("/v1/knowledge/collections/handbook")
        assert denied.status_code == 403 and "knowledge.manage.global" in denied.json()["error"]["message"]
        mine = c.post("/v1/knowledge/collections", json={"name": "x"})  # lands in the key's project
        assert mine.status_code == 201 and mine.json()["project_id"] == lab.projects["alpha"]


def test_a_role_granted_knowledge_manage_global_may_write_them(openai_upstream, make_gateway):
    from tests.conftest import UPSTREAM_KEY, model

    gw = make_gateway(
        {
            "model_list": [model("gpt", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "access": {
                "roles": {"librarian": ["knowledge.use", "knowledge.manage", "knowledge.manage.global"]}
            },
        }
    )
    access = gw.app.state.access
    uid = access.identity.create_user(ACTOR, "lib", "librarian").id
    _, token = access.keys.create(ACTOR, user=uid)
    access.cache.load()
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        assert c.post("/v1/knowledge/collections", json={"name": "shared"}).status_code == 201
        assert c.post("/v1/knowledge/collections/shared/documents", json=DOCS).status_code == 200
        assert c.delete("/v1/knowledge/collections/shared").status_code == 200


def test_cli_ingest_takes_a_project(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path / "lab")]
    assert runner.invoke(app, ["projects", "add", "alpha", *args]).exit_code == 0
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha handbook")
    r = runner.invoke(app, ["ingest", str(tmp_path / "docs"), "-c", "kb", "--project", "alpha", *args])
    assert r.exit_code == 0, r.output
    listing = json.loads(runner.invoke(app, ["collections", "--format", "json", *args]).stdout)
    project = [c["project_id"] for c in listing if c["name"] == "kb"]
    assert project and project[0].startswith("prj_")
    wrong = runner.invoke(app, ["ingest", str(tmp_path / "docs"), "-c", "kb", "--project", "nope", *args])
    assert wrong.exit_code == 2 and "nope" in wrong.output


def test_an_upload_to_a_missing_collection_creates_it_when_the_caller_may(lab):
    master = {"Authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=lab.gw.url, headers=master, timeout=60) as c:
        made = c.post("/v1/knowledge/collections/fresh/documents", json=DOCS)  # as `ailab ingest` does
        assert made.status_code == 200 and made.json()["added"] == 1
        assert c.get("/v1/knowledge/collections/fresh").json()["project_id"] is None
    with lab.client("ana") as c:  # knowledge.manage in alpha: a new collection lands there
        mine = c.post("/v1/knowledge/collections/ana-notes/documents", json=DOCS)
        assert mine.status_code == 200
        assert c.get("/v1/knowledge/collections/ana-notes").json()["project_id"] == lab.projects["alpha"]
    with lab.client(
        "bea"
    ) as c:  # beta's analyst: alpha's collection is hidden, the same 404 as a missing one
        hidden = c.post("/v1/knowledge/collections/ana-notes/documents", json=DOCS)
        assert hidden.status_code == 404 and "POST /v1/knowledge/collections" in hidden.text
    _, token = lab.access.keys.create(ACTOR, user=lab.users["ana"])  # no project, nothing lab-wide
    lab.refresh()
    with httpx.Client(base_url=lab.gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        missing = c.post("/v1/knowledge/collections/nowhere/documents", json=DOCS)
        assert missing.status_code == 404 and "ailab ingest" in missing.json()["error"]["message"]
