"""`knowledge.rerank_model`: search sends its fused candidates through the gateway's rerank cycle (a loopback
OpenAI-compatible `/v1/rerank` upstream), reorders by relevance, says so, and the call is ledgered as
endpoint `rerank`; unset, search is as before; `rerank=False` (an app's choice) skips it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.knowledge.conftest import lab_config
from tests.upstreams.openai_extra import rerank_scores

DOCS = {
    "a.md": "# Cats\n\nCats sleep most of the day and purr when they are content.",
    "b.md": "# Dogs\n\nDogs bark at strangers and fetch sticks in the park.",
    "c.md": "# Pets\n\nCats and dogs both make good pets for a family home.",
    "d.md": "# Fish\n\nFish swim in a tank and need clean water every week.",
}
QUERY = "do cats and dogs make good pets"


def _lab(make_gateway, openai_upstream, tmp_path, rerank: bool) -> Any:
    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg.pop("general_settings")
    cfg.pop("ailab")
    cfg["model_list"].append(
        model(
            "reranker",
            "hosted_vllm/BAAI/bge-reranker-v2-m3",
            f"{openai_upstream.url}/v1",
            api_key=UPSTREAM_KEY,
            model_info={"mode": "rerank", "input_cost_per_token": 1e-6, "output_cost_per_token": 0},
        )
    )
    if rerank:
        cfg["knowledge"]["rerank_model"] = "reranker"
    gw = make_gateway(cfg)
    c = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60)
    assert c.post("/v1/knowledge/collections", json={"name": "kb"}).status_code == 201
    docs = [{"name": n, "text": t} for n, t in DOCS.items()]
    assert c.post("/v1/knowledge/collections/kb/documents", json={"documents": docs}).status_code == 200
    return gw, c


def _rerank_rows(gw: Any) -> list[Any]:
    gw.flush()
    r = schema.requests
    with gw.app.state.engine.connect() as conn:
        rows = conn.execute(select(r).where(r.c.endpoint == schema.ENDPOINT_RERANK)).mappings().all()
    return list(rows)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_search_is_reranked_and_ledgered(make_gateway, openai_upstream, tmp_path, mode) -> None:
    gw, c = _lab(make_gateway, openai_upstream, tmp_path, rerank=True)
    r = c.post("/v1/knowledge/collections/kb/search", json={"query": QUERY, "k": 3, "mode": mode})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reranked"] is True and body["rerank_model"] == "reranker"
    hits = body["data"]
    assert 1 <= len(hits) <= 3
    scores = [h["rerank_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # The scores are the upstream's (share of the query's words in the chunk's text).
    assert scores == [round(rerank_scores(QUERY, [h["text"]])[0], 6) for h in hits]
    assert "Cats and dogs" in hits[0]["text"]
    (sent,) = [e["body"] for e in openai_upstream.up.requests("/v1/rerank")]
    assert sent["query"] == QUERY and sent["model"] == "BAAI/bge-reranker-v2-m3"
    assert len(sent["documents"]) >= len(hits)
    (row,) = _rerank_rows(gw)
    assert row["status"] == 200 and row["prompt_tokens"] > 0 and (row["cost_pusd"] or 0) > 0


def test_unset_rerank_model_is_todays_search(make_gateway, openai_upstream, tmp_path) -> None:
    gw, c = _lab(make_gateway, openai_upstream, tmp_path, rerank=False)
    r = c.post("/v1/knowledge/collections/kb/search", json={"query": QUERY, "k": 3})
    assert r.status_code == 200 and r.json()["reranked"] is False
    assert all("rerank_score" not in h for h in r.json()["data"])
    assert openai_upstream.up.requests("/v1/rerank") == [] and _rerank_rows(gw) == []


async def test_rerank_false_skips_it(openai_upstream, tmp_path) -> None:
    """In process (as the CLI and apps run it): `rerank=False` skips the reranker, `True` applies it."""
    from ailab.access.principal import MASTER as MASTER_PRINCIPAL
    from ailab.config import load_config
    from ailab.server.local import open_lab

    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg["model_list"].append(
        model("reranker", "hosted_vllm/bge-reranker", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    )
    cfg["knowledge"]["rerank_model"] = "reranker"
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    async with open_lab(load_config(path, tmp_path / "data")) as (_, svc):
        coll = await svc.create_collection(MASTER_PRINCIPAL, "kb")
        items = [(n, t.encode()) for n, t in DOCS.items()]
        await svc.ingest_bytes(MASTER_PRINCIPAL, coll, items)
        hits = await svc.search(MASTER_PRINCIPAL, [coll], QUERY, 2, rerank=False)
        assert hits and all(h.rerank_score is None for h in hits)
        assert openai_upstream.up.requests("/v1/rerank") == []
        hits = await svc.search(MASTER_PRINCIPAL, [coll], QUERY, 2, rerank=True)
        assert len(hits) == 2 and all(h.rerank_score is not None for h in hits)
        assert "Cats and dogs" in hits[0].text
