"""RedisLimiter specifics: failures surface as LimiterUnavailable without credentials, key TTLs, script
caching, idempotent scripts; and the make_limiter factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from ailab.config.models import LimitsSettings
from ailab.limits import LimiterUnavailable, MemoryLimiter, RedisLimiter, Scope, make_limiter, period_end
from tests.limits.conftest import FakeClock, free_port


@pytest.fixture
async def limiter(redis_url: str, redis_client: redis.Redis) -> AsyncIterator[RedisLimiter]:
    lim = RedisLimiter(redis_url)
    yield lim
    await lim.close()


async def test_redis_down_raises_limiter_unavailable_without_credentials() -> None:
    port = free_port()  # nothing listens there any more
    lim = RedisLimiter(f"redis://admin:hunter2-secret@127.0.0.1:{port}/0", timeout=0.5)
    scope = Scope("key", "k1", rpm=10, max_budget_pusd=100)
    start = time.monotonic()
    try:
        with pytest.raises(LimiterUnavailable) as exc:
            await lim.acquire([scope], 10, 10)
        message = str(exc.value)
        assert f"Redis at redis://127.0.0.1:{port}/0" in message
        assert "hunter2" not in message and "admin" not in message
        with pytest.raises(LimiterUnavailable):
            await lim.spent(scope)
        with pytest.raises(LimiterUnavailable):
            await lim.seed_spend(scope, 5)
    finally:
        await lim.close()
    assert time.monotonic() - start < 3  # fails fast: no backoff between retries


async def test_keys_expire(limiter: RedisLimiter, redis_client: redis.Redis) -> None:
    daily = Scope("key", "k1", rpm=10, tpm=1000, max_budget_pusd=100, budget_duration="daily")
    lifetime = Scope("project", "p1", max_budget_pusd=100)
    await limiter.settle(await limiter.acquire([daily, lifetime], 10, 10), 10, 10)
    ttls = {str(key): int(redis_client.ttl(key)) for key in redis_client.keys("*")}
    prefix = "ailab:limits:key:k1:"
    assert (
        0 < ttls[prefix + "rpm"] <= 120
        and 0 < ttls[prefix + "tpm"] <= 120
        and 0 < ttls[prefix + "tpmv"] <= 120
    )
    (spend_key,) = (k for k in ttls if k.startswith(prefix + "spend:d"))
    expected = period_end("daily", time.time()) + 86400 - time.time()
    assert abs(ttls[spend_key] - expected) < 5  # kept a day past the period's end
    assert all(0 < ttl <= 720 for key, ttl in ttls.items() if ":res" in key)
    assert ttls["ailab:limits:project:p1:spend:life"] == -1  # a lifetime budget's spend never expires


async def test_seed_spend_sets_only_a_missing_value_with_ttl(
    limiter: RedisLimiter, redis_client: redis.Redis
) -> None:
    scope = Scope("user", "u1", max_budget_pusd=100, budget_duration="monthly")
    await limiter.seed_spend(scope, 40)
    await limiter.seed_spend(scope, 10)
    assert await limiter.spent(scope) == 40
    (key,) = redis_client.keys("*spend*")
    assert redis_client.ttl(key) > 86400


async def test_scripts_are_cached_and_reloaded(limiter: RedisLimiter, redis_client: redis.Redis) -> None:
    scope = Scope("key", "k1", rpm=100)
    await limiter.acquire([scope], 0, 0)
    redis_client.config_resetstat()
    await limiter.acquire([scope], 0, 0)
    stats = redis_client.info("commandstats")
    assert "cmdstat_evalsha" in stats and "cmdstat_eval" not in stats  # EVALSHA, not the script text
    redis_client.script_flush()  # e.g. Redis restarted: redis-py loads the script again
    await limiter.acquire([scope], 0, 0)


def run_twice(script: Any) -> Any:
    """A script call that Redis executes twice, like a retry after a reply lost in transit."""

    async def call(keys: list[str], args: list[str]) -> Any:
        await script(keys=keys, args=args)
        return await script(keys=keys, args=args)

    return call


async def test_retried_scripts_count_once(redis_url: str, redis_client: redis.Redis) -> None:
    lim = RedisLimiter(redis_url, clock=FakeClock())
    lim._acquire_lua = run_twice(lim._acquire_lua)
    lim._settle_lua = run_twice(lim._settle_lua)
    scope = Scope("key", "k1", rpm=2, tpm=100, max_budget_pusd=100)
    try:
        await lim.settle(await lim.acquire([scope], 50, 60), 50, 60)
        assert await lim.spent(scope) == 60
        await lim.acquire([scope], 50, 40)  # one request, 50 tokens and 60 pUSD counted: this fits exactly
    finally:
        await lim.close()


async def test_prefixes_isolate_limiters(redis_url: str, redis_client: redis.Redis) -> None:
    a, b = RedisLimiter(redis_url, prefix="a:"), RedisLimiter(redis_url, prefix="b:")
    scope = Scope("key", "k1", max_budget_pusd=10)
    try:
        await a.settle(await a.acquire([scope], 0, 10), 0, 10)
        assert await a.spent(scope) == 10 and await b.spent(scope) == 0
    finally:
        await a.close()
        await b.close()


async def test_make_limiter(redis_url: str) -> None:
    assert isinstance(make_limiter(LimitsSettings()), MemoryLimiter)
    lim = make_limiter(LimitsSettings(backend="redis", redis_url=redis_url))
    assert isinstance(lim, RedisLimiter)
    await lim.close()
    with pytest.raises(ValueError, match=r"backend is 'redis' but ailab.limits.redis_url is not set"):
        make_limiter(LimitsSettings(backend="redis"))
    with pytest.raises(ValueError, match="redis_url is invalid"):
        make_limiter(LimitsSettings(backend="redis", redis_url="http://example"))


async def test_a_failed_settle_can_be_retried(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    lim = RedisLimiter(redis_url)
    script = lim._settle_lua
    calls = 0

    async def flaky(keys: list[str], args: list[str]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.ConnectionError("Connection reset by peer")
        return await script(keys=keys, args=args)

    monkeypatch.setattr(lim, "_settle_lua", flaky)
    scope = Scope("key", "k1", max_budget_pusd=100)
    try:
        res = await lim.acquire([scope], 0, 50)
        with pytest.raises(LimiterUnavailable, match="ConnectionError: Connection reset by peer"):
            await lim.settle(res, 0, 70)
        assert not res.settled
        await lim.settle(res, 0, 70)
        await lim.settle(res, 0, 70)
        assert res.settled and calls == 2 and await lim.spent(scope) == 70
    finally:
        await lim.close()
