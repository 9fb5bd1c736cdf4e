"""The knowledge HTTP API on a real server: collections, multipart upload, search, ask (plain and streamed)
through the gateway against a loopback upstream, the ledger rows of those calls, and an OpenAI client on
the grounded chat endpoint."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ailab.ledger import usage_report
from tests.conftest import MASTER
from tests.knowledge.conftest import lab_config
from tests.knowledge.corpus import make_pdf

H = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def gw(make_gateway, openai_upstream, tmp_path):
    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg.pop("general_settings")
    cfg.pop("ailab")
    return make_gateway(cfg)


def upload(gw, name: str = "docs") -> dict:
    c = httpx.Client(base_url=gw.url, headers=H, timeout=30)
    assert c.post("/v1/knowledge/collections", json={"name": name}).status_code == 201
    files = [
        (
            "files",
            ("vacuum.md", b"# Vacuum\n\nVACUUM reclaims storage occupied by dead tuples.\n", "text/markdown"),
        ),
        (
            "files",
            ("wal.pdf", make_pdf(["Write-ahead logging protects data after a crash."]), "application/pdf"),
        ),
        ("files", ("bad.pdf", b"%PDF-1.4 nothing", "application/pdf")),
    ]
    r = c.post(f"/v1/knowledge/collections/{name}/documents", files=files)
    assert r.status_code == 200, r.text
    return r.json()


def test_collections_upload_search_and_delete(gw):
    report = upload(gw)
    assert report["added"] == 2 and [f["source"] for f in report["failed"]] == ["bad.pdf"]
    c = httpx.Client(base_url=gw.url, headers=H, timeout=30)
    listed = c.get("/v1/knowledge/collections").json()
    assert [(x["name"], x["documents"], x["store"], x["dimension"]) for x in listed] == [
        ("docs", 2, "embedded", 384)
    ]
    hits = c.post(
        "/v1/knowledge/collections/docs/search", json={"query": "crash safety of data", "k": 2}
    ).json()
    assert hits["data"][0]["source"] == "wal.pdf" and hits["data"][0]["page"] == 1
    chunks = c.post(
        "/v1/knowledge/collections/docs/search",
        json={"query": "crash safety of data", "k": 2, "group": "chunk", "per_document": 2},
    )
    assert chunks.status_code == 200 and chunks.json()["data"][0]["source"] == "wal.pdf"
    bad = c.post("/v1/knowledge/collections/docs/search", json={"query": "x", "group": "page"})
    assert bad.status_code == 400 and "group" in bad.text
    docs = c.get("/v1/knowledge/collections/docs/documents").json()
    doc = next(d for d in docs if d["source"] == "wal.pdf")
    assert c.delete(f"/v1/knowledge/collections/docs/documents/{doc['id']}").status_code == 200
    assert len(c.get("/v1/knowledge/collections/docs/documents").json()) == 1
    again = c.post(
        "/v1/knowledge/collections/docs/documents",
        json={
            "documents": [
                {
                    "name": "vacuum.md",
                    "text": "# Vacuum\n\nVACUUM reclaims storage occupied by dead tuples.\n",
                }
            ]
        },
    )
    assert again.json()["unchanged"] == 1
    missing = c.get("/v1/knowledge/collections/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = c.post("/v1/knowledge/collections", json={"name": "wide", "dimension": 768})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "dimension_mismatch"
    assert c.delete("/v1/knowledge/collections/docs").status_code == 200
    assert c.get("/v1/knowledge/collections").json() == []


def test_ask_cites_retrieved_chunks_and_both_calls_are_ledgered_with_costs(gw):
    upload(gw)
    c = httpx.Client(base_url=gw.url, headers=H, timeout=30)
    # The loopback model echoes the question, so a question carrying "[1]" yields an answer citing source 1.
    r = c.post(
        "/v1/knowledge/collections/docs/ask", json={"question": "How does VACUUM free space? [1]", "k": 2}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"].startswith("echo:") and body["model"] == "gpt"
    cited = [x for x in body["citations"] if x["cited"]]
    assert [x["n"] for x in cited] == [1] and cited[0]["source"] == "vacuum.md"
    assert cited[0]["text"].startswith("VACUUM reclaims")
    prompt = _recorded[-1]  # what the chat model was sent
    assert "[1] Vacuum" in prompt and "VACUUM reclaims storage" in prompt
    gw.flush()
    rows = {row.name: row for row in usage_report(gw.app.state.engine, "model")}
    assert rows["embed"].requests >= 3 and rows["embed"].unpriced == 0 and rows["embed"].cost_pusd > 0
    assert rows["gpt"].requests == 1 and rows["gpt"].unpriced == 0 and rows["gpt"].cost_pusd > 0


_recorded: list[str] = []


@pytest.fixture(autouse=True)
def _record(openai_upstream):
    """Keep the messages the loopback chat model receives."""
    _recorded.clear()
    orig = openai_upstream.up.record

    async def record(request):
        entry = await orig(request)
        msgs = (entry.get("body") or {}).get("messages") or []
        _recorded.append("\n".join(str(m.get("content")) for m in msgs))
        return entry

    openai_upstream.up.record = record


def test_ask_streams_sources_deltas_and_citations(gw):
    upload(gw)
    events = []
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/knowledge/collections/docs/ask",
        json={"question": "what does write-ahead logging do? [1]", "stream": True, "k": 2},
        headers=H,
        timeout=30,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "delta" in kinds
    done = events[-1]
    assert done["answer"] == "".join(e["content"] for e in events if e["type"] == "delta")
    assert done["citations"][0]["cited"] and done["citations"][0]["source"] == "wal.pdf"
    assert done["usage"]["completion_tokens"] > 0


def test_openai_client_on_the_grounded_chat_endpoint(gw):
    upload(gw)
    client = openai.OpenAI(base_url=f"{gw.url}/v1/knowledge/docs", api_key=MASTER, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "What reclaims dead tuples? [1]"}]
    )
    assert reply.choices[0].message.content.startswith("echo:")
    citations = reply.model_extra["citations"]
    assert citations[0]["cited"] and citations[0]["source"] == "vacuum.md"
    stream = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "What reclaims dead tuples?"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("echo:")
    assert chunks[-1].model_extra["citations"][0]["source"] == "vacuum.md"
    missing = openai.OpenAI(base_url=f"{gw.url}/v1/knowledge/nope", api_key=MASTER, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        missing.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])


def test_openapi_lists_the_knowledge_routes(gw):
    spec = httpx.get(f"{gw.url}/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/knowledge/collections", "/v1/knowledge/collections/{name}/ask"} <= paths
    upload_op = spec["paths"]["/v1/knowledge/collections/{name}/documents"]["post"]
    assert "multipart/form-data" in upload_op["requestBody"]["content"]
    assert httpx.get(f"{gw.url}/v1/unknown", headers=H).status_code == 404
