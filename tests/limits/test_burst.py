"""Concurrency: bursts of acquire+settle against a small budget, in one process, across two limiters
sharing a Redis, and across two OS processes. The budget may be overshot only by what requests already in
flight cost beyond their estimate."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from queue import Empty

import pytest

from ailab.limits import Limiter, LimitExceeded, RedisLimiter, Scope
from tests.limits._burst import EST, MAX_OVER, UNIT, BurstResult, burst, max_in_flight, redis_worker
from tests.limits.conftest import MakeLimiter

BUDGET = 100 * UNIT
KEY = Scope("key", "k1", max_budget_pusd=BUDGET * 10)
PROJECT = Scope("project", "p1", max_budget_pusd=BUDGET, budget_duration="daily")


async def check_budget_bound(limiter: Limiter, result: BurstResult, budget: int) -> None:
    spent = await limiter.spent(PROJECT)
    assert spent == result.charged  # every settled cost counted exactly once
    assert await limiter.spent(KEY) == result.charged
    bound = budget + max_in_flight(result.intervals) * MAX_OVER
    assert spent <= bound, f"spent {spent} > {bound}"
    # Real costs never undercut estimates, so each admission needed EST of headroom that never came back.
    assert result.admitted <= budget // EST
    # A rejection saw less than EST of headroom, and usage only grows: the budget was used up, not leaked
    # to reservations that were never released.
    assert result.rejected > 0 and spent > budget - EST
    with pytest.raises(LimitExceeded):
        await limiter.acquire([KEY, PROJECT], 0, EST)


async def test_burst_exact_costs_admits_exactly_the_budget(make: MakeLimiter) -> None:
    limiter = make()
    result = await burst([limiter], [KEY, PROJECT], 200, seed=1, overshoot=False)
    assert result.admitted == BUDGET // EST == 10
    assert await limiter.spent(PROJECT) == BUDGET


async def test_burst_with_overshoot_stays_within_the_bound(make: MakeLimiter) -> None:
    limiter = make()
    result = await burst([limiter], [KEY, PROJECT], 200, seed=2)
    await check_budget_bound(limiter, result, BUDGET)


@pytest.mark.parametrize("overshoot", [False, True])
async def test_burst_two_redis_limiters_share_the_budget(
    redis_url: str, redis_client: object, overshoot: bool
) -> None:
    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)  # two gateway processes: two connection pools
    try:
        result = await burst([a, b], [KEY, PROJECT], 200, seed=3, overshoot=overshoot)
        assert result.admitted > 0
        if overshoot:
            await check_budget_bound(a, result, BUDGET)
        else:
            assert result.admitted == BUDGET // EST and await b.spent(PROJECT) == BUDGET
    finally:
        await a.close()
        await b.close()


async def test_rpm_burst_admits_exactly_the_limit(make: MakeLimiter, redis_url: str) -> None:
    scope = Scope("user", "u1", rpm=50)
    limiters: Sequence[Limiter] = [make()]
    if isinstance(limiters[0], RedisLimiter):
        limiters = [limiters[0], make()]
    admitted = 0

    async def one(i: int) -> None:
        nonlocal admitted
        try:
            await limiters[i % len(limiters)].acquire([scope], 0, 0)
            admitted += 1
        except LimitExceeded as exc:
            assert exc.limit == "rpm" and 0 < exc.retry_after <= 60

    await asyncio.gather(*(one(i) for i in range(200)))
    assert admitted == 50


def collect(procs: Sequence[BaseProcess], queue: Queue[BurstResult]) -> list[BurstResult]:
    """One result per worker; fails at once (not after a long timeout) when a worker dies."""
    results: list[BurstResult] = []
    deadline = time.monotonic() + 120
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=0.1))
        except Empty:
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not crashed and time.monotonic() < deadline, f"worker exit codes {crashed}"
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return results


def test_burst_two_os_processes_share_the_budget(redis_url: str, redis_client: object) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    budget = 300 * UNIT
    project = Scope("project", "p1", max_budget_pusd=budget, budget_duration="daily")
    scopes = [KEY, project]
    procs = [
        ctx.Process(target=redis_worker, args=(redis_url, scopes, 200, seed, barrier, queue))
        for seed in (4, 5)
    ]
    for p in procs:
        p.start()
    results = collect(procs, queue)
    total = results[0].merge(results[1])
    assert min(r.admitted for r in results) > 0  # both processes took part in the race
    spent = int(redis_client.get(next(k for k in redis_client.keys("*p1:spend:*"))))  # type: ignore[attr-defined]
    assert spent == total.charged
    assert spent <= budget + max_in_flight(total.intervals) * MAX_OVER
    assert total.admitted <= budget // EST
    assert spent > budget - EST
