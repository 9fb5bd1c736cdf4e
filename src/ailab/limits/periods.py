"""Calendar budget periods in UTC: daily, weekly (ISO week, Monday 00:00) and monthly; None is lifetime.

Calendar periods rather than "the last 24 hours" so that a budget matches what `ailab usage --by day` and an
invoice show, and so that the spend can be seeded from a simple ledger sum at start-up.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

DURATIONS = ("daily", "weekly", "monthly")
_NOUN = {"daily": "day", "weekly": "week", "monthly": "month"}


def _check(duration: str | None) -> None:
    if duration is not None and duration not in DURATIONS:
        raise ValueError(
            f"unknown budget_duration {duration!r}: expected 'daily', 'weekly', 'monthly' or None (lifetime)"
        )


def _start_dt(duration: str, now: float) -> datetime:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if duration == "daily":
        return day
    if duration == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_dt(duration: str, start: datetime) -> datetime:
    if duration == "daily":
        return start + timedelta(days=1)
    if duration == "weekly":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def period_start(duration: str | None, now: float) -> float:
    """UNIX seconds at which the period containing `now` began; 0.0 for a lifetime budget."""
    _check(duration)
    if duration is None:
        return 0.0
    return _start_dt(duration, now).timestamp()


def period_end(duration: str | None, now: float) -> float:
    """UNIX seconds at which the period containing `now` ends (exclusive); math.inf for a lifetime budget."""
    _check(duration)
    if duration is None:
        return math.inf
    return _next_dt(duration, _start_dt(duration, now)).timestamp()


def period_key(duration: str | None, now: float) -> str:
    """Stable name of the period containing `now`, used in storage keys: 'life', 'd20240131', 'w20240129'."""
    _check(duration)
    if duration is None:
        return "life"
    start = _start_dt(duration, now)
    if duration == "monthly":
        return start.strftime("m%Y%m")
    return start.strftime(f"{duration[0]}%Y%m%d")


def period_noun(duration: str | None) -> str:
    """'this day' / 'this week' / 'this month' / 'in total', for user-facing messages."""
    return f"this {_NOUN[duration]}" if duration else "in total"


class PeriodCache:
    """Memoises the current period per duration: computing it costs a datetime round-trip (~2 µs), and the
    hot path asks for it on every request of every budgeted scope while it changes once a day at most."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str | None, tuple[float, float, str]] = {}

    def get(self, duration: str | None, now: float) -> tuple[float, float, str]:
        """(start, end, key) of the period containing `now`."""
        hit = self._cache.get(duration)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit
        value = (period_start(duration, now), period_end(duration, now), period_key(duration, now))
        self._cache[duration] = value
        return value
