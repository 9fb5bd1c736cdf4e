"""How often a cron schedule fires: the longest gap between two runs (croniter does the parsing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from croniter import CroniterError, croniter

HORIZON = timedelta(days=800)  # long enough to see a yearly schedule fire twice
MAX_FIRES = 3000  # enough to see every gap of a frequent schedule (a minute-level one repeats daily)


class CronError(ValueError):
    pass


def cron_period(expr: str, start: date | None = None) -> timedelta:
    """The longest interval between consecutive runs of `expr` (from `start`, default today)."""
    first = datetime.combine(start or datetime.now(UTC).date(), time(), tzinfo=UTC)
    try:
        it = croniter(expr, first)
        prev: datetime = it.get_next(datetime)
        longest, fires = timedelta(0), 1
        while fires < MAX_FIRES:
            nxt: datetime = it.get_next(datetime)
            if nxt - first > HORIZON:
                break
            longest, prev, fires = max(longest, nxt - prev), nxt, fires + 1
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronError(str(exc) or type(exc).__name__) from None
    if fires < 2:
        raise CronError("it fires less than twice in two years")
    return longest
