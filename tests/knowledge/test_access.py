"""Collections belong to projects: members use them, others get 404 (as if they did not exist) and do not see
them listed."""

from __future__ import annotations

from tests.access.conftest import lab  # noqa: F401 - the access tests' lab: users of every role, two projects


def test_collections_are_isolated_by_project(lab):  # noqa: F811
    alpha = lab.projects["alpha"]
    with lab.client("ana") as c:  # analyst of alpha: may create in alpha, not in beta
        assert (
            c.post("/v1/knowledge/collections", json={"name": "alpha-kb", "project_id": alpha}).status_code
            == 201
        )
        denied = c.post("/v1/knowledge/collections", json={"name": "x", "project_id": lab.projects["beta"]})
        assert denied.status_code == 403
        docs = {"documents": [{"name": "a.md", "text": "# A\\n\\nalpha secret plans"}]}
        assert c.post("/v1/knowledge/collections/alpha-kb/documents", json=docs).status_code == 200
    with lab.client("usr") as c:  # a user of alpha may search but not change it
        assert c.post("/v1/knowledge/collections/alpha-kb/search", json={"query": "plans"}).status_code == 200
        assert c.delete("/v1/knowledge/collections/alpha-kb").status_code == 403
    with lab.client("bea") as c:  # analyst of beta sees nothing of alpha
        assert c.get("/v1/knowledge/collections").json() == []
        assert c.post("/v1/knowledge/collections/alpha-kb/search", json={"query": "plans"}).status_code == 404
        assert c.get("/v1/knowledge/collections/alpha-kb/documents").status_code == 404
    with lab.client("bob") as c:  # a user with no project given and no key project cannot own a collection
        assert c.post("/v1/knowledge/collections", json={"name": "mine"}).status_code == 403
