"""/v1/messages is metered like chat: one ledger row per call (endpoint `messages`, stream flag, the
upstream's own tokens with Anthropic's cache reads and writes, cost), budgets and rate limits apply, a key
scoped to one model reaches no other, and a failure mid-stream is an Anthropic `error` event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest
from genai_prices import Usage as PUsage
from genai_prices import calc_price
from sqlalchemy import select

from ailab.ledger import schema, totals
from ailab.types import PICO_PER_USD
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.gateway.test_messages_api import model_list, start_all, user
from tests.ledger.test_reconcile import PARSERS, PRICE

CACHED_SYSTEM = [{"type": "text", "text": "You are terse. " * 40, "cache_control": {"type": "ephemeral"}}]
OLLAMA_PRICES = (Decimal("1e-7"), Decimal("3e-7"))  # model_list's model_info for the local model


@pytest.fixture
def upstreams():
    servers = start_all()
    yield servers
    for s in servers.values():
        s.server.stop()


def rows(gw: Any) -> list[Any]:
    r = schema.requests
    with gw.app.state.engine.connect() as conn:
        return list(conn.execute(select(r).order_by(r.c.id)).mappings().all())


def expected_cost(name: str, p: int, c: int, cached: int, written: int) -> Decimal:
    if name == "ollama":
        return OLLAMA_PRICES[0] * p + OLLAMA_PRICES[1] * c
    provider, ref = PRICE[name]
    usage = PUsage(
        input_tokens=p, output_tokens=c, cache_read_tokens=cached or None, cache_write_tokens=written or None
    )
    return Decimal(calc_price(usage, model_ref=ref, provider_id=provider).total_price)


def test_ledger_rows_equal_upstream_usage(upstreams, make_gateway) -> None:
    gw = make_gateway({"model_list": model_list(upstreams)})
    c = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
    streams = 0
    for group in ("claude", "gpt", "gem", "llama"):
        for i in range(2):  # the second sight of the cached system prompt reads the cache (Anthropic)
            c.messages.create(model=group, max_tokens=50, system=CACHED_SYSTEM, messages=user(f"q {i}"))  # type: ignore[arg-type]
            with c.messages.stream(model=group, max_tokens=50, system=CACHED_SYSTEM, messages=user("s")) as s:  # type: ignore[arg-type]
                s.get_final_message()
            streams += 1
    gw.flush()
    expected = [0, 0, 0, 0]
    cost = Decimal(0)
    calls = 0
    for name, running in upstreams.items():
        for resp in running.up.responses:
            assert resp["status"] == 200, resp
            p, out, cached, written = PARSERS[name](resp["body"])
            expected = [expected[0] + p, expected[1] + out, expected[2] + cached, expected[3] + written]
            cost += expected_cost(name, p, out, cached, written)
            calls += 1
    got = rows(gw)
    assert calls == len(got) == 16
    assert {r["endpoint"] for r in got} == {schema.ENDPOINT_MESSAGES}
    assert schema.ENDPOINTS[schema.ENDPOINT_MESSAGES] == "messages"
    assert sum(1 for r in got if r["flags"] & schema.FLAG_STREAM) == streams
    assert not any(r["flags"] & schema.FLAG_ESTIMATED for r in got)
    sums = [sum(r[k] for r in got) for k in ("prompt_tokens", "completion_tokens", "cached_tokens")]
    assert sums == expected[:3]
    assert sum(r["cache_write_tokens"] for r in got) == expected[3] > 0 and expected[2] > 0
    t = totals(gw.app.state.engine)
    assert t.unpriced == 0 and t.errors == 0
    assert t.cost_usd == cost


@pytest.fixture
def keyed(upstreams, make_gateway):
    gw = make_gateway(
        {
            "model_list": [
                *model_list(upstreams),
                model(
                    "priced",
                    "openai/gpt-4o-mini",
                    f"{upstreams['openai'].url}/v1",
                    api_key=UPSTREAM_KEY,
                    model_info={"input_cost_per_token": 0, "output_cost_per_token": 1e-6},
                ),
            ],
            "router_settings": {"num_retries": 0, "fallbacks": [{"gpt": ["claude"]}]},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    uid = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"}).json()["id"]

    def key(**fields: Any) -> str:
        made = admin.post("/api/keys", json={"user_id": uid, "name": f"k{len(fields)}", **fields})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    return gw, key


def test_a_scoped_key_reaches_no_other_model(keyed, upstreams) -> None:
    gw, key = keyed
    c = anthropic.Anthropic(base_url=gw.url, api_key=key(models=["gpt"]), max_retries=0)
    assert c.messages.create(model="gpt", max_tokens=10, messages=user("hi")).content
    for name in ("claude", "no-such-model"):
        with pytest.raises(anthropic.NotFoundError) as exc:
            c.messages.create(model=name, max_tokens=10, messages=user("hi"))
        assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        for other in ("claude", "gem", "llama", "priced"):
            if other != name:
                assert other not in exc.value.response.text  # no model list leaked
        with pytest.raises(anthropic.NotFoundError):
            c.messages.count_tokens(model=name, messages=user("hi"))
    r = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "gpt", "max_tokens": 5, "messages": user("x"), "fallbacks": ["claude"]},
        headers={"x-api-key": key(models=["gpt"])},
    )
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert upstreams["anthropic"].up.requests("/v1/messages") == []


def test_rate_limits_and_budgets_apply(keyed) -> None:
    gw, key = keyed
    slow = anthropic.Anthropic(base_url=gw.url, api_key=key(rpm=1), max_retries=0)
    statuses = []
    for _ in range(3):  # 3: a minute may roll over once
        try:
            slow.messages.create(model="gpt", max_tokens=5, messages=user("hi"))
            statuses.append(200)
        except anthropic.RateLimitError as exc:
            assert exc.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
            assert "retry-after" in exc.response.headers
            statuses.append(429)
    assert statuses[0] == 200 and statuses[-1] == 429
    budget = "0.00002"  # 20 completion tokens at 1e-6: a few 3-token answers, then refused
    spender = anthropic.Anthropic(base_url=gw.url, api_key=key(max_budget_usd=budget), max_retries=0)
    ok = 0
    with pytest.raises(anthropic.RateLimitError) as refused:
        for _ in range(50):
            spender.messages.create(model="priced", max_tokens=5, messages=user("hello there"))
            ok += 1
    assert ok >= 1 and "budget" in refused.value.body["error"]["message"]  # type: ignore[index]
    gw.flush()
    spent = sum(r["cost_pusd"] or 0 for r in rows(gw) if r["status"] == 200) / PICO_PER_USD
    assert Decimal(str(spent)) <= Decimal(budget) + Decimal("0.000003")


def test_an_upstream_error_mid_stream_is_an_error_event(upstreams, make_gateway) -> None:
    headers = {"x-fake-stream-error": "overloaded_error", "x-fake-stream-error-message": "Overloaded"}
    gw = make_gateway(
        {
            "model_list": [
                model(
                    "claude",
                    "anthropic/claude-sonnet-4-5",
                    upstreams["anthropic"].url,
                    api_key=UPSTREAM_KEY,
                    extra_headers=headers,
                )
            ],
            "router_settings": {"num_retries": 0},
        }
    )
    body = {"model": "claude", "max_tokens": 50, "messages": user("one two three"), "stream": True}
    r = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": MASTER})
    assert r.status_code == 200
    lines = r.text.splitlines()
    # Anthropic's own error event, passed through as it came (native path), then the stream ends.
    assert lines[-2].startswith("data: ") and '"overloaded_error"' in lines[-2]
    assert r.text.count("event: error") == 1
    assert "event: error" in lines and "event: message_stop" not in lines
    assert UPSTREAM_KEY not in r.text
    c = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
    with (
        pytest.raises(anthropic.APIStatusError),
        c.messages.stream(model="claude", max_tokens=50, messages=user("x")) as s,
    ):
        s.get_final_message()
    gw.flush()
    got = rows(gw)
    assert [r["status"] for r in got] == [502, 502] and all(r["flags"] & schema.FLAG_STREAM for r in got)
