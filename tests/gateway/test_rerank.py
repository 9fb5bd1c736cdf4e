"""POST /v1/rerank (the Cohere/Jina shape vLLM and TEI serve), driven with httpx (the openai SDK has no rerank
call): passed through to an OpenAI-compatible loopback upstream's `/v1/rerank`; results sorted by score,
`top_n` and `return_documents` honoured; 400s naming the field; a provider without a rerank API refused;
ledgered as endpoint `rerank` with the upstream's tokens and cost; model scope and budgets apply."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ailab.ledger import schema
from ailab.types import PICO
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.upstreams import anthropic_server, openai_server

DOCS = ["the cat sat", "a dog ran far", {"text": "cat and dog play"}, "nothing here"]
PRICE = 1e-6  # per input token


@pytest.fixture
def lab(make_gateway):
    up = start_upstream("openai", openai_server.make_app)
    claude = start_upstream("anthropic", anthropic_server.make_app)
    gw = make_gateway(
        {
            "model_list": [
                model(
                    "reranker",
                    "hosted_vllm/BAAI/bge-reranker-v2-m3",
                    f"{up.url}/v1",
                    api_key=UPSTREAM_KEY,
                    model_info={"mode": "rerank", "input_cost_per_token": PRICE, "output_cost_per_token": 0},
                ),
                model("other", "openai/gpt-4o-mini", f"{up.url}/v1", api_key=UPSTREAM_KEY),
                model("claude", "anthropic/claude-sonnet-4-5", claude.url, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    uid = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"}).json()["id"]

    def key(**fields: Any) -> str:
        made = admin.post("/api/keys", json={"user_id": uid, "name": f"k{len(fields)}", **fields})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    yield gw, up, key
    up.server.stop()
    claude.server.stop()


def post(gw: Any, body: dict[str, Any], key: str = MASTER) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"})


def rows(gw: Any) -> list[Any]:
    gw.flush()
    r = schema.requests
    with gw.app.state.engine.connect() as conn:
        return list(conn.execute(select(r).order_by(r.c.id)).mappings().all())


def test_results_sorted_top_n_and_documents(lab) -> None:
    gw, up, _ = lab
    r = post(gw, {"model": "reranker", "query": "cat dog", "documents": DOCS})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"]
    data = r.json()
    assert data["model"] == "reranker" and data["id"]
    scores = [x["relevance_score"] for x in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert data["results"][0]["index"] == 2 and "document" not in data["results"][0]
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] > 0
    sent = up.up.requests("/v1/rerank")[-1]["body"]
    assert sent["model"] == "BAAI/bge-reranker-v2-m3" and sent["documents"][2] == "cat and dog play"
    r = post(
        gw, {"model": "reranker", "query": "cat", "documents": DOCS, "top_n": 2, "return_documents": True}
    )
    results = r.json()["results"]
    assert len(results) == 2
    assert results[0]["document"] == {
        "text": DOCS[results[0]["index"]] if results[0]["index"] != 2 else "cat and dog play"
    }
    # /rerank without /v1 is served too (as every /v1 route)
    assert (
        httpx.post(
            f"{gw.url}/rerank",
            json={"model": "reranker", "query": "x", "documents": ["x"]},
            headers={"Authorization": f"Bearer {MASTER}"},
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "documents": ["a"]}, "model"),
        ({"model": "reranker", "documents": ["a"]}, "query"),
        ({"model": "reranker", "query": "q", "documents": []}, "documents"),
        ({"model": "reranker", "query": "q", "documents": ["a", "b", "c", {"txt": 1}]}, "documents[3]"),
        ({"model": "reranker", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"model": "reranker", "query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
        (
            {"model": "reranker", "query": "q", "documents": ["a"], "return_documents": "yes"},
            "return_documents",
        ),
    ],
)
def test_bad_requests_name_the_field(lab, body, param) -> None:
    gw, up, _ = lab
    r = post(gw, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"].startswith(param)
    assert up.up.requests("/v1/rerank") == []


def test_provider_without_rerank_is_refused(lab) -> None:
    gw, _, _ = lab
    r = post(gw, {"model": "claude", "query": "q", "documents": ["a"]})
    assert r.status_code == 400
    assert "cannot rerank" in r.json()["error"]["message"]
    assert post(gw, {"model": "nope", "query": "q", "documents": ["a"]}).status_code == 404


def test_ledger_row_with_tokens_and_cost(lab) -> None:
    gw, _, _ = lab
    r = post(gw, {"model": "reranker", "query": "cat dog", "documents": DOCS})
    tokens = r.json()["usage"]["total_tokens"]
    (row,) = [x for x in rows(gw) if x["endpoint"] == schema.ENDPOINT_RERANK]
    assert schema.ENDPOINTS[schema.ENDPOINT_RERANK] == "rerank"
    assert row["status"] == 200 and row["prompt_tokens"] == tokens and row["completion_tokens"] == 0
    assert not row["flags"] & schema.FLAG_ESTIMATED
    assert Decimal(row["cost_pusd"]) / PICO == Decimal(str(PRICE)) * tokens


def test_scope_and_budget(lab) -> None:
    gw, up, key = lab
    scoped = key(models=["other"])
    r = post(gw, {"model": "reranker", "query": "q", "documents": ["a"]}, scoped)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert up.up.requests("/v1/rerank") == []
    spender = key(max_budget_usd="0.00003")  # 30 input tokens at 1e-6: a few 9-token calls, then refused
    statuses = [
        post(gw, {"model": "reranker", "query": "cat", "documents": DOCS}, spender).status_code
        for _ in range(20)
    ]
    assert statuses[0] == 200 and statuses[-1] == 429
    r = post(gw, {"model": "reranker", "query": "cat", "documents": DOCS}, spender)
    assert r.status_code == 429 and "budget" in r.json()["error"]["message"]


def test_models_lists_rerank_groups(lab) -> None:
    gw, _, _ = lab
    ids = [
        m["id"]
        for m in httpx.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {MASTER}"}).json()[
            "data"
        ]
    ]
    assert "reranker" in ids
    client = gw.app.state.knowledge.gateway if gw.app.state.knowledge is not None else None
    if client is not None:
        assert "reranker" not in client.chat_models()


def test_upstream_failure_falls_back(make_gateway) -> None:
    a = start_upstream("openai", openai_server.make_app)
    b = start_upstream("openai", openai_server.make_app)
    try:
        gw = make_gateway(
            {
                "model_list": [
                    model("rr", "hosted_vllm/rr-a", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                    model("rr-backup", "hosted_vllm/rr-b", f"{b.url}/v1", api_key=UPSTREAM_KEY),
                ],
                "router_settings": {"num_retries": 0, "fallbacks": [{"rr": ["rr-backup"]}]},
            }
        )
        a.up.fail_next(status=503)
        r = post(gw, {"model": "rr", "query": "cat", "documents": ["cat", "dog"]})
        assert r.status_code == 200, r.text
        assert [x["index"] for x in r.json()["results"]] == [0, 1]
        assert len(a.up.requests("/v1/rerank")) == 1 and len(b.up.requests("/v1/rerank")) == 1
        (row,) = [x for x in rows(gw) if x["endpoint"] == schema.ENDPOINT_RERANK]
        assert row["status"] == 200
    finally:
        a.server.stop()
        b.server.stop()


def test_usage_from_cohere_meta_or_estimated() -> None:
    from ailab.gateway.cycle import usage_of
    from ailab.gateway.endpoints.rerank import rerank_answer

    body = {"model": "m", "query": "cat dog", "documents": ["cat", "dog here"], "top_n": 1}
    results = [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.9}]
    cohere = rerank_answer({"results": results, "meta": {"billed_units": {"input_tokens": 7}}}, body, "x")
    assert cohere["results"] == [{"index": 0, "relevance_score": 0.9}]
    assert cohere["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    bare = rerank_answer({"results": results}, body, "x")
    usage = usage_of(bare)
    assert usage is not None and usage.estimated and usage.prompt_tokens > 0
    assert "estimated" not in bare["usage"]  # the marker is the ledger's, not the client's
