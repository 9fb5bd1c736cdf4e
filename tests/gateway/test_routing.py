"""Retries, fallbacks and cooldowns, asserted from the fake upstreams' own request logs."""

from __future__ import annotations

import openai
import pytest
from sqlalchemy import select

from ailab.ledger import schema, totals
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.upstreams import openai_server

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def two_upstreams():
    a = start_upstream("a", openai_server.make_app)
    b = start_upstream("b", openai_server.make_app)
    yield a, b
    a.server.stop()
    b.server.stop()


def _client(gw):
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)


def _rows(gw):
    gw.flush()
    with gw.app.state.engine.connect() as conn:
        return conn.execute(select(schema.requests).order_by(schema.requests.c.id)).mappings().all()


def test_retry_moves_to_the_other_deployment(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY, weight=1000),
                model("m", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY, weight=0.001),
            ],
            "router_settings": {"num_retries": 2, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )
    a.up.fail_next(status=500)
    r = _client(gw).chat.completions.create(model="m", messages=MSG)
    assert r.choices[0].message.content == "echo: hi"
    assert len(a.up.requests("chat")) == 1 and len(b.up.requests("chat")) == 1
    row = _rows(gw)[-1]
    assert row["retries"] == 1 and row["status"] == 200


def test_no_retry_on_plain_4xx(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("m2", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 3, "fallbacks": [{"m": ["m2"]}]},
        }
    )
    a.up.fail_next(status=422, body={"error": {"message": "bad schema"}})
    with pytest.raises(openai.UnprocessableEntityError):
        _client(gw).chat.completions.create(model="m", messages=MSG)
    assert len(a.up.requests("chat")) == 1 and b.up.requests("chat") == []


def test_retry_honours_retry_after_and_backoff(two_upstreams, make_gateway):
    a, _ = two_upstreams
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 2, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )
    a.up.fail_next(status=429, retry_after="0.3")
    a.up.fail_next(status=502)
    _client(gw).chat.completions.create(model="m", messages=MSG)
    times = [e["t"] for e in a.up.requests("chat")]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3  # Retry-After respected
    assert _rows(gw)[-1]["retries"] == 2


def test_fallback_to_another_group_from_config_and_per_request(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("primary", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("backup", "openai/y", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {
                "num_retries": 1,
                "retry_backoff": 0.01,
                "cooldown_time": 0,
                "fallbacks": [{"primary": ["backup"]}],
            },
        }
    )
    a.up.fail_next(2, status=500)
    r = _client(gw).chat.completions.create(model="primary", messages=MSG)
    assert r.choices[0].message.content == "echo: hi"
    assert len(a.up.requests("chat")) == 2 and b.up.requests("chat")[-1]["body"]["model"] == "y"
    # per-request fallbacks (LiteLLM's body param) are honoured and not forwarded upstream
    a.up.fail_next(2, status=503)
    _client(gw).chat.completions.create(model="primary", messages=MSG, extra_body={"fallbacks": ["backup"]})
    assert "fallbacks" not in b.up.requests("chat")[-1]["body"]
    assert len(b.up.requests("chat")) == 2


def test_cooldown_after_allowed_fails(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("m", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {
                "num_retries": 0,
                "allowed_fails": 1,
                "cooldown_time": 60,
                "routing_strategy": "latency-based-routing",
            },
        }
    )
    client = _client(gw)
    a.up.fail_next(10, status=500)
    served = 0
    for _ in range(12):
        try:
            client.chat.completions.create(model="m", messages=MSG)
            served += 1
        except openai.APIStatusError:
            pass
    # a failed twice (allowed_fails=1 → the second failure cools it down), then only b is used.
    assert len(a.up.requests("chat")) == 2
    assert len(b.up.requests("chat")) == served == 10
    ready = gw.app.state.router.groups["m"]
    assert sorted(d.state.cooldown_until > 0 for d in ready) == [False, True]


def test_all_cooling_down_gives_429_with_retry_after(two_upstreams, make_gateway):
    a, _ = two_upstreams
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 0, "allowed_fails": 0, "cooldown_time": 30},
        }
    )
    client = _client(gw)
    a.up.fail_next(status=500)
    with pytest.raises(openai.APIStatusError) as first:
        client.chat.completions.create(model="m", messages=MSG)
    assert first.value.status_code == 502
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="m", messages=MSG)
    assert int(exc.value.response.headers["retry-after"]) >= 29
    assert len(a.up.requests("chat")) == 1  # the cooling deployment was not called


def test_stream_failing_before_first_byte_falls_back(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("primary", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("backup", "openai/y", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0, "cooldown_time": 0, "fallbacks": [{"primary": ["backup"]}]},
        }
    )
    a.up.fail_next(status=500)
    chunks = list(_client(gw).chat.completions.create(model="primary", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi"
    assert len(a.up.requests("chat")) == 1 and len(b.up.requests("chat")) == 1
    row = _rows(gw)[-1]
    assert row["status"] == 200 and row["flags"] & schema.FLAG_STREAM


def test_stream_cut_after_first_byte_ends_with_error_and_is_ledgered(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("primary", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("backup", "openai/y", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 2, "cooldown_time": 0, "fallbacks": [{"primary": ["backup"]}]},
        }
    )
    a.up.fail_next(cut_after=2)
    got = []
    with pytest.raises(openai.APIError) as exc:
        for c in _client(gw).chat.completions.create(model="primary", messages=MSG, stream=True):
            got.append(c)
    assert got
    assert "stream was cut" in exc.value.message
    assert b.up.requests("chat") == [] and len(a.up.requests("chat")) == 1  # no retry after the first byte
    row = _rows(gw)[-1]
    assert row["status"] == 502 and row["flags"] & schema.FLAG_ESTIMATED
    assert totals(gw.app.state.engine).errors == 1


def test_ledgered_retries_equal_the_upstream_calls_made(two_upstreams, make_gateway):
    import concurrent.futures

    a, _ = two_upstreams
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {
                "num_retries": 2,
                "retry_backoff": 0.01,
                "allowed_fails": 0,
                "cooldown_time": 30,
            },
        }
    )
    a.up.fail_next(20, status=500, delay=0.2)  # slow failures: the three requests overlap
    client = _client(gw)

    def one(_: int) -> int:
        try:
            client.chat.completions.create(model="m", messages=MSG)
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(one, range(3)))
    assert all(s >= 400 for s in statuses)
    rows = _rows(gw)
    calls = sum(r["retries"] + 1 for r in rows if r["deployment_dim"] is not None)
    assert calls == len(a.up.requests("chat"))


def test_retry_after_from_one_deployment_does_not_delay_another(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY, weight=1000),
                model("m", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY, weight=0.001),
            ],
            "router_settings": {"num_retries": 1, "cooldown_time": 0, "max_retry_delay": 120},
        }
    )
    a.up.fail_next(status=429, retry_after="120")
    # Were b's retry held back by a's Retry-After, this request would outlive the client's timeout.
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0, timeout=20)
    assert client.chat.completions.create(model="m", messages=MSG).choices[0].message.content
    assert len(a.up.requests("chat")) == 1 and len(b.up.requests("chat")) == 1


def test_weight_zero_drains_a_deployment(two_upstreams, make_gateway):
    a, b = two_upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY, weight=1),
                model("m", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY, weight=0),
                model("only-drained", "openai/x", f"{b.url}/v1", api_key=UPSTREAM_KEY, weight=0),
            ],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    client = _client(gw)
    for _ in range(20):
        client.chat.completions.create(model="m", messages=MSG)
    assert len(a.up.requests("chat")) == 20 and b.up.requests("chat") == []
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="only-drained", messages=MSG)
    assert exc.value.status_code == 429 and exc.value.body["code"] == "no_deployment_available"
    assert b.up.requests("chat") == []
    assert _rows(gw)[-1]["status"] == 429


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "Fri, 31 Dec 9999 23:59:59 GMT", "-5"])
def test_huge_or_odd_retry_after_is_capped(two_upstreams, make_gateway, value):
    import time

    from ailab.gateway.providers.base import MAX_RETRY_AFTER

    a, _ = two_upstreams
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{a.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 0, "allowed_fails": 0, "cooldown_time": 1},
        }
    )
    a.up.fail_next(status=429, retry_after=value)
    with pytest.raises(openai.RateLimitError) as exc:
        _client(gw).chat.completions.create(model="m", messages=MSG)
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= MAX_RETRY_AFTER
    row = _rows(gw)[-1]
    assert row["status"] == 429
    dep = gw.app.state.router.groups["m"][0]
    assert dep.state.cooldown_until - time.monotonic() <= MAX_RETRY_AFTER
