"""Malformed knowledge requests over real HTTP: a 400 naming what is wrong (never a 500), JSON bodies
accepted without a Content-Type header, and user input quoted clipped in error messages."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import MASTER
from tests.knowledge.conftest import lab_config

H = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def client(make_gateway, openai_upstream, tmp_path):
    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg.pop("general_settings")
    cfg.pop("ailab")
    gw = make_gateway(cfg)
    with httpx.Client(base_url=gw.url, headers=H, timeout=60) as c:
        assert c.post("/v1/knowledge/collections", json={"name": "docs"}).status_code == 201
        docs = {"documents": [{"name": "a.md", "text": "# A\n\nVacuum reclaims storage.\n"}]}
        assert c.post("/v1/knowledge/collections/docs/documents", json=docs).json()["added"] == 1
        yield c


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"page": {"$gt": 1}}, "filters.page"),
        ({"page": [1, 2]}, "filters.page"),
        ({"source_prefix": 3}, "filters.source_prefix"),
        ({"Bad-Field": 1}, "unknown field"),
        ("page=1", "filters"),
    ],
)
def test_malformed_filters_are_a_400_naming_the_filter(client, filters, named):
    for route, body in (("search", {"query": "vacuum"}), ("ask", {"question": "vacuum?"})):
        r = client.post(f"/v1/knowledge/collections/docs/{route}", json={**body, "filters": filters})
        assert r.status_code == 400, r.text
        assert named in r.json()["error"]["message"]
    chat = {"messages": [{"role": "user", "content": "vacuum?"}], "knowledge": {"filters": filters}}
    r = client.post("/v1/knowledge/docs/chat/completions", json=chat)
    assert r.status_code == 400 and named in r.json()["error"]["message"], r.text


def test_malformed_chat_knowledge_options_are_a_400(client):
    for body in (
        {"messages": [{"role": "user", "content": "x"}], "knowledge": "all"},
        {"messages": [{"role": "user", "content": "x"}], "knowledge": {"k": "five"}},
        {"messages": ["hello"]},
    ):
        r = client.post("/v1/knowledge/docs/chat/completions", json=body)
        assert r.status_code == 400, r.text


def test_json_bodies_without_a_content_type(client):
    raw = {"Authorization": f"Bearer {MASTER}"}  # httpx adds no Content-Type to `content=`
    body = orjson.dumps({"query": "vacuum", "filters": {"kind": "markdown"}})
    r = client.post("/v1/knowledge/collections/docs/search", content=body, headers=raw)
    assert r.status_code == 200 and r.json()["data"][0]["source"] == "a.md", r.text
    docs = orjson.dumps({"documents": [{"name": "b.txt", "text": "Write-ahead logging."}]})
    r = client.post("/v1/knowledge/collections/docs/documents", content=docs, headers=raw)
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    r = client.post("/v1/knowledge/collections", content=orjson.dumps({"name": "other"}), headers=raw)
    assert r.status_code == 201, r.text


def test_error_messages_quote_user_input_clipped(client):
    huge = "x" * 100_000
    r = client.post("/v1/knowledge/collections/docs/search", json={"query": "q", "filters": {huge: 1}})
    assert r.status_code == 400 and len(r.text) < 2_000
    r = client.get(f"/v1/knowledge/collections/{'y' * 20_000}")
    assert r.status_code == 404 and len(r.text) < 2_000
    r = client.post("/v1/knowledge/collections", json={"name": "n", "store": huge})
    assert r.status_code == 400 and len(r.text) < 2_000
    r = client.post("/v1/knowledge/collections/docs/ask", json={"question": "q", "model": huge})
    assert 400 <= r.status_code < 500 and len(r.text) < 2_000, r.text[:300]
    chat = {"model": huge, "messages": [{"role": "user", "content": "vacuum?"}]}
    r = client.post("/v1/knowledge/docs/chat/completions", json=chat)
    assert 400 <= r.status_code < 500 and len(r.text) < 2_000, r.text[:300]
