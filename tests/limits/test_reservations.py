"""Reservations live as long as their request: a heartbeat extends those still in flight, so only a crashed
process's reservations expire; one that spans UTC midnight is held against, and settles into, the new day;
a zero (or spent) budget admits nothing, not even a request estimated at 0."""

from __future__ import annotations

import asyncio
import time

import pytest

from ailab.limits import LimitExceeded, Scope
from tests.limits.conftest import FakeClock, MakeLimiter
from tests.limits.test_limits import ts


async def test_a_refreshed_reservation_outlives_its_ttl(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock, reservation_ttl=600)
    key = Scope("key", "k1", max_budget_pusd=100)
    await lim.acquire([key], 0, 60)  # a long stream, still in flight
    for _ in range(5):  # an hour of heartbeats
        clock.advance(500)
        await lim.refresh()
    with pytest.raises(LimitExceeded, match="reserved by requests in progress"):
        await lim.acquire([key], 0, 50)


async def test_the_heartbeat_runs_on_its_own(make: MakeLimiter) -> None:
    ttl = 0.3
    lim = make(reservation_ttl=ttl)
    key = Scope("key", "k1", max_budget_pusd=100)
    res = await lim.acquire([key], 0, 60)
    deadline = time.monotonic() + 30
    while time.time() < res.created + 4 * ttl:  # the request stays in flight for several TTLs
        assert time.monotonic() < deadline
        await asyncio.sleep(ttl / 4)
    with pytest.raises(LimitExceeded, match="reserved by requests in progress"):
        await lim.acquire([key], 0, 50)
    await lim.settle(res, 0, 60)
    assert await lim.spent(key) == 60


async def test_a_request_across_midnight_counts_in_the_new_day(make: MakeLimiter) -> None:
    clock = FakeClock(ts(2035, 3, 7, 23, 59, 50))
    lim = make(clock)
    key = Scope("key", "k1", max_budget_pusd=100, budget_duration="daily")
    await lim.settle(await lim.acquire([key], 0, 30), 0, 30)  # the old day's spend
    res = await lim.acquire([key], 0, 60)
    clock.now = ts(2035, 3, 8, 0, 0, 10)
    assert await lim.spent(key) == 0  # a new day...
    with pytest.raises(LimitExceeded, match="reserved by requests in progress"):
        await lim.acquire([key], 0, 50)  # ...that already holds the request in flight
    await lim.settle(res, 0, 70, at=clock.now)
    assert await lim.spent(key) == 70
    with pytest.raises(LimitExceeded):
        await lim.acquire([key], 0, 31)
    await lim.acquire([key], 0, 30)


async def test_a_zero_budget_admits_nothing(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    zero = Scope("project", "p0", max_budget_pusd=0)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([zero], 10, 0)  # even when the price is unknown (estimated at 0)
    assert exc.value.limit == "budget"
    assert exc.value.message == "project p0 may not spend anything: its budget is $0.0000"
    spent = Scope("key", "k1", max_budget_pusd=10)
    await lim.settle(await lim.acquire([spent], 0, 10), 0, 10)
    with pytest.raises(LimitExceeded, match="exhausted"):
        await lim.acquire([spent], 0, 0)
