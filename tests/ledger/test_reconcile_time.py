"""Time-priced deployments (`cost_per_hour`, `watts` × `kwh_price`) bill the serving deployment's busy time,
shared among the requests in flight on it: over a concurrent run the ledger's cost equals the hourly price ×
the deployment's busy wall time; Retry-After sleeps and time on other deployments are not billed."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from ailab.ledger import totals
from tests.conftest import MASTER, UPSTREAM_KEY, model

PER_HOUR = Decimal("3.6")  # USD: a thousandth of a dollar per busy second
HOURLY = [{"cost_per_hour": 3.6}, {"watts": 1800, "kwh_price": 2.0}]
BODY = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}


def _gpu(name: str, url: str, info: dict) -> dict:
    return model(name, "openai/llama-3-8b", f"{url}/v1", api_key=UPSTREAM_KEY, model_info=info)


async def _run(url: str, group: str, starts: list[float]) -> list[tuple[float, float, int]]:
    """Requests started at the given offsets (seconds); (start, end, status) of each, monotonic."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as client:

        async def one(offset: float) -> tuple[float, float, int]:
            await asyncio.sleep(offset)  # the load's shape, not synchronisation
            t0 = time.monotonic()
            r = await client.post(
                f"{url}/v1/chat/completions",
                json={"model": group, **BODY},
                headers={"Authorization": f"Bearer {MASTER}"},
            )
            return (t0, time.monotonic(), r.status_code)

        return list(await asyncio.gather(*(one(s) for s in starts)))


def _union(spans: list[tuple[float, float, int]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b, _ in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


@pytest.mark.parametrize("info", HOURLY, ids=["cost_per_hour", "watts"])
def test_gpu_hours_of_a_concurrent_run_equal_the_busy_wall_time(openai_upstream, make_gateway, info):
    gw = make_gateway({"model_list": [_gpu("gpu", openai_upstream.url, info)]})
    # Three bursts of ten overlapping 0.4 s requests, staggered so that the number in flight keeps changing.
    starts = [wave * 1.0 + i * 0.02 for wave in range(3) for i in range(10)]
    openai_upstream.up.fail_next(len(starts), delay=0.4)
    spans = asyncio.run(_run(gw.url, "gpu", starts))
    gw.flush()
    assert {s for *_, s in spans} == {200}
    clock = gw.app.state.router.groups["gpu"][0].state.busy
    assert clock.in_flight == 0
    busy = Decimal(repr(clock.busy_s))
    assert 0.4 <= clock.busy_s <= _union(spans)  # the deployment was busy while a client waited
    cost = totals(gw.app.state.engine).cost_usd
    expected = PER_HOUR * busy / 3600
    assert abs(cost - expected) <= expected / 100, (cost, expected)
    latencies = Decimal(repr(sum(b - a for a, b, _ in spans)))
    assert cost * 4 < PER_HOUR * latencies / 3600  # each request is not billed its whole time


def test_retry_after_sleeps_and_other_deployments_are_not_billed(openai_upstream, make_gateway):
    from tests.conftest import start_upstream
    from tests.upstreams import openai_server

    other = start_upstream("openai", openai_server.make_app)
    try:
        gw = make_gateway(
            {
                "model_list": [
                    _gpu("gpu", openai_upstream.url, HOURLY[0]),
                    _gpu("spare", other.url, HOURLY[0]),
                ],
                "router_settings": {"num_retries": 1, "fallbacks": [{"spare": ["gpu"]}]},
            }
        )
        # gpu: a 429 with Retry-After: 1, then an answer after 0.2 s; spare: a 500 after 0.3 s, then fallback.
        openai_upstream.up.fail_next(1, status=429, retry_after="1")
        openai_upstream.up.fail_next(1, delay=0.2)
        other.up.fail_next(2, status=500, delay=0.3)
        (span,) = asyncio.run(_run(gw.url, "spare", [0.0]))
        gw.flush()
        assert span[2] == 200
        gpu = gw.app.state.router.groups["gpu"][0].state.busy
        spare = gw.app.state.router.groups["spare"][0].state.busy
        assert spare.busy_s >= 0.3 and span[1] - span[0] >= 1 + 0.2 + 0.3  # slept, and tried the spare
        cost = totals(gw.app.state.engine).cost_usd
        expected = PER_HOUR * Decimal(repr(gpu.busy_s)) / 3600
        assert abs(cost - expected) <= expected / 100, (cost, expected)
        assert gpu.busy_s < span[1] - span[0] - 1.0  # the Retry-After sleep is not busy time
    finally:
        other.server.stop()


def _budget_key(gw, usd: str) -> str:
    from ailab.access.records import Limits
    from ailab.access.service import AccessService
    from ailab.config.models import AccessSettings

    access = AccessService.build(gw.app.state.engine, AccessSettings())
    uid = access.identity.create_user("test", f"spender{usd}", "user").id
    _, token = access.keys.create("test", user=uid, name=usd, limits=Limits(Limits.usd_to_pusd(usd)))
    gw.app.state.access.cache.load()
    return token


async def _until_refused(url: str, key: str, workers: int, most: int) -> list[int]:
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=workers)) as client:

        async def worker() -> None:
            for _ in range(most):
                r = await client.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "gpu", **BODY},
                    headers={"Authorization": f"Bearer {key}"},
                )
                statuses.append(r.status_code)
                if r.status_code != 200:
                    assert r.json()["error"]["code"] == "budget_exceeded"
                    return

        await asyncio.gather(*(worker() for _ in range(workers)))
    return statuses


def test_an_hourly_budget_under_concurrency_is_passed_by_at_most_the_requests_in_flight(
    openai_upstream, make_gateway
):
    from sqlalchemy import text

    gw = make_gateway({"model_list": [_gpu("gpu", openai_upstream.url, HOURLY[0])]})
    budget = Decimal("0.004")  # 4 busy seconds; the run below would take about 8
    key, zero = _budget_key(gw, str(budget)), _budget_key(gw, "0")
    openai_upstream.up.fail_next(1, delay=0.2)
    assert asyncio.run(_run(gw.url, "gpu", [0.0]))[0][2] == 200  # unbudgeted: the deployment's first timing
    gw.flush()
    before = totals(gw.app.state.engine).cost_usd
    # A burst of 20 at once on a budget worth five requests' estimates (the first timing × the GPU's price):
    # without estimates all 20 get in.
    estimate = PER_HOUR * Decimal(repr(gw.app.state.router.groups["gpu"][0].state.busy.ewma_s)) / 3600
    openai_upstream.up.fail_next(20, delay=0.2)
    burst = asyncio.run(_until_refused(gw.url, _budget_key(gw, f"{estimate * 11 / 2:.12f}"), 20, 1))
    assert 1 <= burst.count(200) <= 7 and burst.count(429) >= 13, burst
    gw.flush()
    before = totals(gw.app.state.engine).cost_usd
    openai_upstream.up.fail_next(400, delay=0.2)
    workers = 10
    statuses = asyncio.run(_until_refused(gw.url, key, workers, 40))
    gw.flush()
    assert 0 < statuses.count(200) < 400 and statuses.count(429) == workers
    spent = totals(gw.app.state.engine).cost_usd - before
    with gw.app.state.engine.connect() as conn:
        dearest = conn.execute(text("SELECT MAX(cost_pusd) FROM ledger_requests")).scalar_one()
    assert spent <= budget + workers * Decimal(dearest) / 10**12, (spent, budget)
    assert asyncio.run(_until_refused(gw.url, zero, 1, 1)) == [429]  # a $0 budget admits nothing


def test_before_any_timing_a_time_priced_request_is_estimated_conservatively(openai_upstream, make_gateway):
    gw = make_gateway({"model_list": [_gpu("gpu", openai_upstream.url, HOURLY[0])]})
    key = _budget_key(gw, "0.05")  # less than a minute of this GPU
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpu", **BODY},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 429 and "may cost up to $0.0600" in r.json()["error"]["message"]
