"""A Redis that restarts empty mid-period does not reset budgets: the limiter notices the missing epoch and
reseeds spend from the ledger before it admits another budgeted request."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from ailab.access.records import Limits
from ailab.access.service import AccessService
from ailab.config.models import AccessSettings
from ailab.ledger import totals
from ailab.limits import RedisLimiter, Scope
from tests.conftest import UPSTREAM_KEY, model
from tests.limits.conftest import RedisProcess

OUT_PRICE = 1e-6  # USD per completion token, prompts free: the fake upstream's answer costs 3 tokens
PER_REQUEST = Decimal("0.000003")
BUDGET_USD = "0.0001"  # 33 requests' worth
BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


def _budget_key(gw) -> str:
    access = AccessService.build(gw.app.state.engine, AccessSettings())
    uid = access.identity.create_user("test", "spender", "user").id
    limits = Limits(Limits.usd_to_pusd(BUDGET_USD), "daily")
    _, token = access.keys.create("test", user=uid, name="budget", limits=limits)
    gw.app.state.access.cache.load()
    return token


def _send(gw, key: str, n: int) -> list[int]:
    with httpx.Client(timeout=30) as client:
        return [
            client.post(
                f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
            ).status_code
            for _ in range(n)
        ]


def test_a_restarted_redis_keeps_the_spend_of_the_period(openai_upstream, make_gateway, redis_server):
    gw = make_gateway(
        {
            "model_list": [
                model(
                    "gpt",
                    "openai/gpt-4o-mini",
                    f"{openai_upstream.url}/v1",
                    api_key=UPSTREAM_KEY,
                    model_info={"input_cost_per_token": 0, "output_cost_per_token": OUT_PRICE},
                )
            ],
            "router_settings": {"num_retries": 0},
            "limits": {"backend": "redis", "redis_url": redis_server.url},
        }
    )
    key = _budget_key(gw)
    assert _send(gw, key, 30) == [200] * 30  # 90 % of the budget
    gw.flush()
    redis_server.restart()  # no persistence: every counter is gone
    after = _send(gw, key, 40)
    gw.flush()
    assert after.count(200) == 3 and set(after) == {200, 429}, after
    assert totals(gw.app.state.engine).cost_usd == 33 * PER_REQUEST <= Decimal(BUDGET_USD)


async def test_without_a_reseeder_a_lost_store_starts_again_and_settles_add_nothing_lost(
    redis_server: RedisProcess,
) -> None:
    lim = RedisLimiter(redis_server.url)
    key = Scope("key", "k1", max_budget_pusd=100)
    try:
        reseeds: list[int] = []

        async def reseed() -> None:
            reseeds.append(1)
            await lim.restore_spend([(key, 80)])

        lim.on_state_lost = reseed
        assert await lim.lost_state()
        await lim.settle(await lim.acquire([key], 0, 10), 0, 10)
        assert reseeds == [1] and await lim.spent(key) == 90
        in_flight = await lim.acquire([key, Scope("user", "u1", rpm=5)], 0, 0)
        redis_server.restart()
        await lim.settle(in_flight, 0, 5)  # into a store without an epoch: its ledger row counts instead
        assert await lim.spent(key) == 0 and await lim.lost_state()
        lim.on_state_lost = None
        await lim.settle(await lim.acquire([key], 0, 10), 0, 10)  # no ledger to ask: starts from zero
        assert await lim.spent(key) == 10 and not await lim.lost_state()
    finally:
        await lim.close()


async def test_only_the_first_process_to_restore_a_lost_store_does(redis_server: RedisProcess) -> None:
    a, b = RedisLimiter(redis_server.url), RedisLimiter(redis_server.url)
    key = Scope("key", "k1", max_budget_pusd=100)
    try:
        await a.restore_spend([(key, 40)])
        await a.settle(await a.acquire([key], 0, 5), 0, 5)  # counted after the first restore
        await b.restore_spend([(key, 40)])  # a second process that also saw the store empty: too late
        assert await b.spent(key) == 45
    finally:
        await a.close()
        await b.close()
