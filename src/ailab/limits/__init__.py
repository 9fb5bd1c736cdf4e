"""Budgets and rate limits for keys, users and projects: acquire() before the upstream call, settle() after.

See docs/limits.md. MemoryLimiter for one gateway process, RedisLimiter to share limits between processes.
"""

from __future__ import annotations

from ailab.config import LimitsSettings
from ailab.limits.base import Limiter, LimiterUnavailable, LimitExceeded, Rate, Reservation, Scope
from ailab.limits.embedded import EmbeddedRedis, EmbeddedRedisError
from ailab.limits.memory import MemoryLimiter
from ailab.limits.periods import period_end, period_start
from ailab.limits.redis_backend import RedisLimiter

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "LimitExceeded",
    "Limiter",
    "LimiterUnavailable",
    "MemoryLimiter",
    "Rate",
    "RedisLimiter",
    "Reservation",
    "Scope",
    "make_limiter",
    "period_end",
    "period_start",
]


def make_limiter(settings: LimitsSettings) -> Limiter:
    """The limiter configured under `ailab.limits`; building it does not connect (Redis connects lazily)."""
    if settings.backend == "memory":
        return MemoryLimiter()
    if settings.backend == "redis":
        if not settings.redis_url:
            raise ValueError(
                "ailab.limits.backend is 'redis' but ailab.limits.redis_url is not set "
                "(e.g. redis://localhost:6379/0)"
            )
        try:
            return RedisLimiter(settings.redis_url)
        except ValueError as err:
            raise ValueError(f"ailab.limits.redis_url is invalid: {err}") from err
    raise ValueError(f"unknown ailab.limits.backend {settings.backend!r}: expected 'memory' or 'redis'")
