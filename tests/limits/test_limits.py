"""Core behaviour of both limiter backends: rpm/tpm rolling windows, budgets and periods, seeding,
settling, all-or-nothing acquire."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar, cast

import pytest

from ailab.limits import LimitExceeded, MemoryLimiter, Scope, period_end, period_start
from tests.limits.conftest import T0, FakeClock, MakeLimiter

T = TypeVar("T")

CENT = 10**10  # pico-USD


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


async def test_scope_without_limits_is_a_no_op(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    free = Scope("key", "k1")
    for _ in range(5):
        res = await lim.acquire([free], 10**9, 10**15)
        await lim.settle(res, 10**9, 10**15)
    assert await lim.spent(free) == 0
    await lim.settle(await lim.acquire([], 1, 1), 1, 1)


async def test_rpm_uses_a_rolling_window(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock)
    key = Scope("project", "p_9", rpm=3)
    for _ in range(3):
        await lim.acquire([key], 0, 0)
        clock.advance(20)  # requests at T0, T0+20, T0+40
    clock.now = T0 + 50
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, 0)
    assert exc.value.limit == "rpm" and exc.value.scope == key
    assert exc.value.retry_after == pytest.approx(10)
    assert exc.value.message == "rate limit of project p_9 reached: 3 requests per minute (retry in 10s)"
    clock.now = T0 + 60  # the first request has left the window
    await lim.acquire([key], 0, 0)
    clock.now = T0 + 61
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, 0)
    assert exc.value.retry_after == pytest.approx(19)  # until the request of T0+20 leaves


async def test_rpm_burst_across_a_minute_boundary_cannot_pass_twice(make: MakeLimiter) -> None:
    clock = FakeClock(T0 + 59.5)  # T0 is on a minute boundary: a fixed bucket would reset at T0+60
    lim = make(clock)
    key = Scope("key", "k1", rpm=10)
    admitted = 0
    for _ in range(2):
        for _ in range(10):
            try:
                await lim.acquire([key], 0, 0)
                admitted += 1
            except LimitExceeded:
                pass
        clock.advance(1.0)
    assert admitted == 10


async def test_rpm_zero_refuses_everything(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([Scope("user", "u1", rpm=0)], 0, 0)
    assert exc.value.retry_after == 60 and "0 requests per minute" in exc.value.message


async def test_tpm_counts_real_tokens_after_settle(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock)
    key = Scope("key", "k1", tpm=1000)
    first = await lim.acquire([key], 600, 0)
    clock.advance(5)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 600, 0)  # 600 estimated + 600 > 1000
    assert exc.value.limit == "tpm"
    assert exc.value.retry_after == pytest.approx(55)
    assert "1,000 tokens per minute, 600 used in the last minute" in exc.value.message
    await lim.settle(first, 100, 0)  # the real count replaces the estimate
    second = await lim.acquire([key], 600, 0)
    clock.advance(5)  # now T0+10: 100 (T0) + 600 (T0+5) in the window
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 400, 0)
    assert exc.value.retry_after == pytest.approx(50)  # freeing the 100 of T0 is enough
    await lim.settle(second, 600, 0)
    clock.now = T0 + 60
    await lim.acquire([key], 400, 0)


async def test_tpm_request_larger_than_the_limit(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([Scope("key", "k1", tpm=1000)], 4096, 0)
    assert exc.value.retry_after == 60
    assert exc.value.message == (
        "request needs up to 4,096 tokens, more than the limit of key k1: 1,000 tokens per minute "
        "(lower max_tokens)"
    )


async def test_tokens_of_a_request_longer_than_the_window_still_count(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock)
    key = Scope("key", "k1", tpm=1000)
    res = await lim.acquire([key], 10, 0)
    clock.advance(90)  # a long stream: its estimate left the window long ago
    await lim.settle(res, 900, 0)
    with pytest.raises(LimitExceeded):
        await lim.acquire([key], 200, 0)
    clock.advance(60)
    await lim.acquire([key], 200, 0)


async def test_daily_budget_and_reset_at_midnight(make: MakeLimiter) -> None:
    clock = FakeClock(ts(2035, 3, 7, 18, 57, 0))
    lim = make(clock)
    key = Scope("key", "k_123", max_budget_pusd=CENT, budget_duration="daily")
    res = await lim.acquire([key], 0, CENT * 6 // 10)
    await lim.settle(res, 0, CENT * 7 // 10)  # costlier than estimated
    assert await lim.spent(key) == CENT * 7 // 10
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, CENT * 4 // 10)
    assert exc.value.limit == "budget" and exc.value.scope == key
    assert exc.value.message == (
        "budget of key k_123 would be exceeded: $0.0070 of $0.0100 spent this day, "
        "this request may cost up to $0.0040 (resets in 5h 3m)"
    )
    await lim.settle(await lim.acquire([key], 0, CENT * 3 // 10), 0, CENT * 3 // 10)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, 1)
    assert exc.value.message == (
        "budget of key k_123 exhausted: $0.0100 of $0.0100 spent this day (resets in 5h 3m)"
    )
    clock.now = ts(2035, 3, 7, 23, 59, 0)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, 1)
    assert exc.value.retry_after == pytest.approx(60)
    clock.now = ts(2035, 3, 8, 0, 0, 0)  # a new UTC day
    assert await lim.spent(key) == 0
    await lim.acquire([key], 0, CENT)


async def test_in_flight_reservations_count_against_the_budget(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    user = Scope("user", "u1", max_budget_pusd=100)
    res = await lim.acquire([user], 0, 60)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([user], 0, 50)
    assert "reserved by requests in progress" in exc.value.message
    await lim.settle(res, 0, None)  # unknown price: spends nothing, releases the reservation
    assert await lim.spent(user) == 0
    await lim.acquire([user], 0, 100)


@pytest.mark.parametrize(
    ("duration", "before", "after"),
    [
        ("weekly", (2035, 3, 11, 23, 59, 59), (2035, 3, 12)),  # Sunday -> Monday (ISO week)
        ("monthly", (2035, 1, 31, 23, 59, 59), (2035, 2, 1)),
        ("monthly", (2035, 12, 31, 23, 0, 0), (2036, 1, 1)),
    ],
)
async def test_weekly_and_monthly_budgets_reset_at_the_calendar_boundary(
    make: MakeLimiter, duration: str, before: tuple[int, ...], after: tuple[int, ...]
) -> None:
    clock = FakeClock(ts(*before))
    lim = make(clock)
    proj = Scope("project", "p1", max_budget_pusd=100, budget_duration=duration)
    await lim.settle(await lim.acquire([proj], 0, 100), 0, 100)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([proj], 0, 1)
    assert exc.value.retry_after == pytest.approx(ts(*after) - clock.now)
    clock.now = ts(*after)
    await lim.acquire([proj], 0, 100)


async def test_lifetime_budget_never_resets(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock)
    key = Scope("key", "k1", max_budget_pusd=CENT)
    await lim.settle(await lim.acquire([key], 0, CENT), 0, CENT)
    clock.advance(400 * 86400)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key], 0, 1)
    assert exc.value.retry_after >= 365 * 86400
    assert exc.value.message == (
        "budget of key k1 exhausted: $0.0100 of $0.0100 spent in total (lifetime budget, does not reset)"
    )


async def test_seed_spend_sets_the_period_once(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock)
    key = Scope("key", "k1", max_budget_pusd=100, budget_duration="daily")
    await lim.seed_spend(key, 90)
    assert await lim.spent(key) == 90
    with pytest.raises(LimitExceeded):
        await lim.acquire([key], 0, 20)
    await lim.seed_spend(key, 0)  # a later refresh with a lagging ledger sum must not lower the spend
    assert await lim.spent(key) == 90
    await lim.settle(await lim.acquire([key], 0, 5), 0, 5)
    assert await lim.spent(key) == 95
    clock.advance(86400)  # next day: no value yet, so the seed applies
    await lim.seed_spend(key, 40)
    assert await lim.spent(key) == 40
    await lim.seed_spend(Scope("key", "unbudgeted"), 40)  # spend is tracked for budgeted scopes only
    assert await lim.spent(Scope("key", "unbudgeted")) == 0


async def test_settle_is_idempotent(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    key = Scope("key", "k1", tpm=1000, max_budget_pusd=100)
    res = await lim.acquire([key], 500, 30)
    await lim.settle(res, 400, 30)
    await lim.settle(res, 400, 30)
    await lim.settle(res, 0, 0)
    assert res.settled
    assert await lim.spent(key) == 30
    await lim.acquire([key], 600, 70)  # 400 + 600 tokens, 30 + 70 spent: both exactly at the limit
    with pytest.raises(LimitExceeded):
        await lim.acquire([key], 0, 1)


async def test_acquire_is_all_or_nothing_across_scopes(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    key = Scope("key", "k1", rpm=1, tpm=100, max_budget_pusd=100)
    project = Scope("project", "p1", max_budget_pusd=50)
    await lim.seed_spend(project, 50)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([key, project], 100, 100)
    assert exc.value.scope == project and exc.value.limit == "budget"
    # Nothing was recorded on the key: its one request per minute, 100 tokens and 100 pUSD are all free.
    res = await lim.acquire([key], 100, 100)
    await lim.settle(res, 100, 100)
    assert await lim.spent(key) == 100 and await lim.spent(project) == 50


async def test_the_first_failing_scope_is_reported(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    user = Scope("user", "u1", rpm=0)
    project = Scope("project", "p1", max_budget_pusd=0)
    with pytest.raises(LimitExceeded) as exc:
        await lim.acquire([user, project], 0, 1)
    assert exc.value.scope == user


async def test_a_scope_listed_twice_counts_once(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    key = Scope("key", "k1", rpm=2, max_budget_pusd=20)
    await lim.settle(await lim.acquire([key, key], 0, 10), 0, 10)
    assert await lim.spent(key) == 10
    await lim.acquire([key], 0, 10)


async def test_unsettled_reservation_expires(make: MakeLimiter) -> None:
    clock = FakeClock()
    lim = make(clock, reservation_ttl=600)
    key = Scope("key", "k1", max_budget_pusd=100)
    crashed = await lim.acquire([key], 0, 100)  # never settled: its process "crashed"
    clock.advance(599)
    with pytest.raises(LimitExceeded):
        await lim.acquire([key], 0, 1)
    clock.advance(1)
    res = await lim.acquire([key], 0, 100)
    await lim.settle(res, 0, 100)
    await lim.settle(crashed, 0, 7)  # a very late settle still counts its real cost
    assert await lim.spent(key) == 107


async def test_failed_request_releases_everything(make: MakeLimiter) -> None:
    lim = make(FakeClock())
    key = Scope("key", "k1", tpm=100, max_budget_pusd=100)
    await lim.settle(await lim.acquire([key], 100, 100), 0, 0)
    await lim.acquire([key], 100, 100)


async def test_a_reservation_belongs_to_its_limiter(make: MakeLimiter) -> None:
    a, b = make(FakeClock()), make(FakeClock())
    res = await a.acquire([Scope("key", "k1", rpm=5)], 0, 0)
    with pytest.raises(ValueError, match="was not made by this"):
        await b.settle(res, 0, 0)


async def test_negative_estimates_are_refused(make: MakeLimiter) -> None:
    with pytest.raises(ValueError, match="estimates must be >= 0"):
        await make(FakeClock()).acquire([Scope("key", "k1", rpm=1)], -1, 0)


def test_scope_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        Scope("team", "t1")
    with pytest.raises(ValueError, match="budget_duration of key k1"):
        Scope("key", "k1", max_budget_pusd=1, budget_duration="yearly")
    with pytest.raises(ValueError, match="rpm of user u1 must be >= 0"):
        Scope("user", "u1", rpm=-1)
    assert not Scope("key", "k1").limited


def test_periods_are_calendar_utc() -> None:
    now = ts(2035, 3, 7, 15, 30)  # a Wednesday
    assert period_start(None, now) == 0.0 and math.isinf(period_end(None, now))
    assert period_start("daily", now) == ts(2035, 3, 7) and period_end("daily", now) == ts(2035, 3, 8)
    assert period_start("weekly", now) == ts(2035, 3, 5) and period_end("weekly", now) == ts(2035, 3, 12)
    assert period_start("monthly", now) == ts(2035, 3, 1) and period_end("monthly", now) == ts(2035, 4, 1)
    dec = ts(2035, 12, 31, 23, 59, 59)
    assert period_start("monthly", dec) == ts(2035, 12, 1) and period_end("monthly", dec) == ts(2036, 1, 1)
    assert period_start("weekly", ts(2035, 3, 5)) == ts(2035, 3, 5)  # Monday 00:00 starts its own week
    assert period_start("daily", T0) == ts(2035, 1, 31)
    with pytest.raises(ValueError, match="unknown budget_duration 'hourly'"):
        period_start("hourly", now)


async def test_memory_acquire_is_cheap_and_constant() -> None:
    """The hot path without a clock: acquire and settle never suspend (no await, so nothing can interleave
    between check and reserve), and the work of one acquire+settle with three scopes, counted in Python
    lines executed, is small and does not grow with the requests already in the windows (no scan). The
    timing itself lives in bench/ (`python -m bench latency`)."""
    clock = FakeClock()
    lim = MemoryLimiter(clock=clock)
    scopes = [
        Scope("key", "k1", rpm=10**9, tpm=10**12, max_budget_pusd=10**18, budget_duration="daily"),
        Scope("user", "u1", rpm=10**9, max_budget_pusd=10**18, budget_duration="monthly"),
        Scope("project", "p1", tpm=10**12, max_budget_pusd=10**18),
    ]

    def one() -> None:
        res = run_now(lim.acquire(scopes, 1000, 10**9))
        run_now(lim.settle(res, 900, 10**9))

    for _ in range(100):
        one()
    few = lines_run(one)
    for _ in range(20_000):
        clock.advance(0.001)  # 20 s: every request stays in the 60 s windows
        one()
    many = lines_run(one)
    assert few == many and few < 400, (few, many)  # 308 lines today
    assert run_now(lim.spent(scopes[0])) == 20_102 * 10**9  # every settle counted
    await lim.close()


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that must complete without suspending (without an event loop)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise AssertionError(f"{coro} suspended")


def lines_run(fn: Callable[[], None]) -> int:
    """Python lines executed by fn() (a loop's body counts once per iteration): a deterministic measure of
    its work, which a scan of the window would make grow."""
    n = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal n
        n += event == "line"
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return n
