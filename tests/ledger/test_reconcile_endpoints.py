"""The mixed-run reconciliation of `test_reconcile.py`, extended to the endpoints beside chat: `/v1/responses`
and `/v1/messages` (streamed and not, native and translated), `/v1/completions` and `/v1/rerank`, mixed with
chat and embeddings. The ledger's totals (tokens, cost, requests per endpoint and stream flag) equal what the
loopback upstreams reported in their own wire format; budgets count every endpoint (a small budget is refused
on each once spent); a key scoped to one model reaches no other through any of them, in each endpoint's own
error shape. Runs on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ailab.ledger import schema, totals
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.ledger.test_reconcile import _json_lines, anthropic_usage, openai_usage
from tests.upstreams import anthropic_server, openai_server

# model_info prices (USD per token, input/output) for every group: the expected cost is plain arithmetic.
PRICES = {"gpt": (1e-7, 3e-7), "claude": (2e-7, 5e-7), "emb": (1e-6, 0.0), "reranker": (1e-6, 0.0)}
UPSTREAM_PRICE = {  # which group's price an upstream call was billed at, by (upstream, path)
    ("openai", "/v1/embeddings"): "emb",
    ("openai", "/v1/rerank"): "reranker",
    ("anthropic", "/v1/messages"): "claude",
}


def responses_usage(body: bytes) -> tuple[int, int, int, int]:
    found = [d.get("usage") or (d.get("response") or {}).get("usage") for d in _json_lines(body)]
    u = [x for x in found if x][-1]
    return (
        u["input_tokens"],
        u["output_tokens"],
        (u.get("input_tokens_details") or {}).get("cached_tokens", 0),
        0,
    )


def rerank_usage(body: bytes) -> tuple[int, int, int, int]:
    return _json_lines(body)[-1]["usage"]["total_tokens"], 0, 0, 0


def upstream_usage(name: str, path: str, body: bytes) -> tuple[int, int, int, int]:
    if name == "anthropic":
        return anthropic_usage(body)
    if path.endswith("/responses"):
        return responses_usage(body)
    if path.endswith("/rerank"):
        return rerank_usage(body)
    return openai_usage(body)


@pytest.fixture
def lab(make_gateway, database_url):
    up = {
        "openai": start_upstream("openai", openai_server.make_app),
        "anthropic": start_upstream("anthropic", anthropic_server.make_app),
    }
    o, a = f"{up['openai'].url}/v1", up["anthropic"].url

    def priced(group: str, **extra: Any) -> dict[str, Any]:
        i, c = PRICES[group]
        return {"input_cost_per_token": i, "output_cost_per_token": c, **extra}

    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", o, api_key=UPSTREAM_KEY, model_info=priced("gpt")),
                model(
                    "claude",
                    "anthropic/claude-sonnet-4-5",
                    a,
                    api_key=UPSTREAM_KEY,
                    model_info=priced("claude"),
                ),
                model(
                    "emb",
                    "openai/text-embedding-3-small",
                    o,
                    api_key=UPSTREAM_KEY,
                    model_info=priced("emb", mode="embedding"),
                ),
                model(
                    "reranker",
                    "hosted_vllm/BAAI/bge-reranker-v2-m3",
                    o,
                    api_key=UPSTREAM_KEY,
                    model_info=priced("reranker", mode="rerank"),
                ),
            ],
            "router_settings": {"num_retries": 0},
            "general_settings": {"database_url": database_url},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    uid = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"}).json()["id"]
    made = 0

    def key(**fields: Any) -> str:
        nonlocal made
        made += 1
        r = admin.post("/api/keys", json={"user_id": uid, "name": f"k{made}", **fields})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    yield gw, up, key
    for s in up.values():
        s.server.stop()


# -- one request on each endpoint, in its own wire format ---------------------------------------------------

USER = [{"role": "user", "content": "tell me about cats and dogs"}]


def call(gw: Any, endpoint: str, group: str, key: str = MASTER, stream: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    body: dict[str, Any]
    if endpoint == "chat":
        body = {"model": group, "messages": USER, "max_tokens": 20}
        if stream:
            body["stream_options"] = {"include_usage": True}
        path = "/v1/chat/completions"
    elif endpoint == "responses":
        body, path = {"model": group, "input": "tell me about cats", "max_output_tokens": 20}, "/v1/responses"
    elif endpoint == "messages":
        body, path = {"model": group, "max_tokens": 20, "messages": USER}, "/v1/messages"
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    elif endpoint == "completions":
        body, path = {"model": group, "prompt": "cats and dogs", "max_tokens": 5}, "/v1/completions"
    elif endpoint == "embeddings":
        body, path = {"model": group, "input": ["alpha beta", "gamma"]}, "/v1/embeddings"
    else:
        body = {"model": group, "query": "cat dog", "documents": ["a cat", "a dog", "a cat and a dog"]}
        path = "/v1/rerank"
    if stream:
        body["stream"] = True
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=30)


MIXED_RUN = [  # (endpoint, group, stream)
    *[("chat", g, s) for g in ("gpt", "claude") for s in (False, True)],
    *[("responses", g, s) for g in ("gpt", "claude") for s in (False, True)],  # native, translated
    *[("messages", g, s) for g in ("claude", "gpt") for s in (False, True)],  # native, translated
    ("completions", "gpt", False),
    ("completions", "gpt", True),
    ("completions", "claude", False),  # translated to chat for a chat-only provider
    ("embeddings", "emb", False),
    ("rerank", "reranker", False),
]
ENDPOINT_IDS = {
    "chat": schema.ENDPOINT_CHAT,
    "responses": schema.ENDPOINT_RESPONSES,
    "messages": schema.ENDPOINT_MESSAGES,
    "completions": schema.ENDPOINT_COMPLETIONS,
    "embeddings": schema.ENDPOINT_EMBEDDINGS,
    "rerank": schema.ENDPOINT_RERANK,
}


def ledger_rows(gw: Any) -> list[Any]:
    gw.flush()
    r = schema.requests
    with gw.app.state.engine.connect() as conn:
        return list(conn.execute(select(r).order_by(r.c.id)).mappings().all())


def test_every_endpoint_reconciles_with_upstream_usage(lab) -> None:
    gw, up, _ = lab
    for endpoint, group, stream in MIXED_RUN:
        r = call(gw, endpoint, group, stream=stream)
        assert r.status_code == 200, (endpoint, group, r.text)
    gw.flush()

    expected = [0, 0, 0]
    cost = Decimal(0)
    calls = 0
    for name, running in up.items():
        for resp in running.up.responses:
            assert resp["status"] == 200, resp
            p, c, cached, _ = upstream_usage(name, resp["path"], resp["body"])
            group = UPSTREAM_PRICE.get((name, resp["path"]), "claude" if name == "anthropic" else "gpt")
            i, o = PRICES[group]
            cost += Decimal(str(i)) * p + Decimal(str(o)) * c
            expected = [expected[0] + p, expected[1] + c, expected[2] + cached]
            calls += 1
    t = totals(gw.app.state.engine)
    assert calls == t.requests == len(MIXED_RUN)
    assert [t.prompt_tokens, t.completion_tokens, t.cached_tokens] == expected
    assert t.unpriced == 0 and t.errors == 0
    assert t.cost_usd == cost

    rows = ledger_rows(gw)
    got = Counter((r["endpoint"], bool(r["flags"] & schema.FLAG_STREAM)) for r in rows)
    want = Counter((ENDPOINT_IDS[e], s) for e, _, s in MIXED_RUN)
    assert got == want  # requests per endpoint and stream flag
    assert not any(r["flags"] & schema.FLAG_ESTIMATED for r in rows)


# -- budgets and model scope, on every endpoint ----------------------------------------------------------------

BUDGETED = [  # (endpoint, group, stream): every way to spend
    ("chat", "gpt", False),
    ("responses", "gpt", False),
    ("responses", "claude", True),
    ("messages", "claude", False),
    ("messages", "gpt", True),
    ("completions", "gpt", False),
    ("embeddings", "emb", False),
    ("rerank", "reranker", False),
]


@pytest.mark.parametrize(("endpoint", "group", "stream"), BUDGETED)
def test_a_small_budget_is_refused_on_each_endpoint(lab, endpoint: str, group: str, stream: bool) -> None:
    gw, _, key = lab
    spender = key(max_budget_usd="0.00002")  # a few calls at these prices, then refused
    statuses = []
    for _ in range(200):
        r = call(gw, endpoint, group, spender, stream)
        statuses.append(r.status_code)
        if r.status_code != 200:
            break
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    if endpoint == "messages":
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
    else:
        assert r.json()["error"]["code"] == "budget_exceeded"
    assert "budget" in r.json()["error"]["message"]


SCOPED = ["chat", "responses", "messages", "completions", "embeddings", "rerank"]


@pytest.mark.parametrize("endpoint", SCOPED)
def test_a_scoped_key_reaches_no_other_model(lab, endpoint: str) -> None:
    gw, up, key = lab
    scoped = key(models=["gpt"])
    before = {n: len(s.up.responses) for n, s in up.items()}
    for other in ("claude", "emb", "reranker"):
        r = call(gw, endpoint, other, scoped)
        assert r.status_code in (403, 404), (endpoint, other, r.text)
        err = r.json()
        if endpoint == "messages":
            assert err["type"] == "error" and err["error"]["type"] in ("not_found_error", "permission_error")
        else:
            assert err["error"]["code"] in ("model_not_found", "permission_denied")
    assert {n: len(s.up.responses) for n, s in up.items()} == before  # no upstream was called
    rows = [r for r in ledger_rows(gw) if r["endpoint"] == ENDPOINT_IDS[endpoint]]
    assert rows and all(r["status"] in (403, 404) and not r["cost_pusd"] for r in rows)
