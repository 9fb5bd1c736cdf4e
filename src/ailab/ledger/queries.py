"""Usage reports: totals grouped by a dimension (or by day) over a time window, from the lean rows."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Integer, func, select

from ailab.ledger import schema
from ailab.types import pusd_to_usd

GROUPS = {
    "model": "group_dim",
    "deployment": "deployment_dim",
    "provider": "provider_dim",
    "key": "key_dim",
    "user": "user_dim",
    "project": "project_dim",
    "error": "error_dim",
    "app": "app_dim",
}
BY_CHOICES = (*GROUPS, "day")
_SINCE = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """'7d', '12h', '30m', or an ISO date/time → a UNIX timestamp."""
    m = _SINCE.match(text.strip())
    if m:
        return time.time() - int(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: use a duration like 7d, 12h, 30m or an ISO date") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


@dataclass
class UsageRow:
    name: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_pusd: int
    unpriced: int  # requests with no known price (their cost is not in cost_usd)

    @property
    def cost_usd(self) -> Decimal:
        return pusd_to_usd(self.cost_pusd)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": str(self.cost_usd),
            "unpriced": self.unpriced,
        }


def usage_report(
    engine: Engine, by: str = "model", since: float | None = None, where: dict[str, set[str]] | None = None
) -> list[UsageRow]:
    """Totals grouped `by` a dimension or day; `where` keeps only rows whose dimension value (e.g. user id,
    project id) is in the given set — an empty set matches nothing.

    Whole days come from the daily rollup; only the partial first day of the window is read from raw rows
    (through the time index), so a report costs the same at 10 million rows as at ten thousand.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"--by {by!r}: choose one of {', '.join(BY_CHOICES)}")
    acc: dict[Any, list[int]] = {}
    with engine.connect() as conn:
        ids = {kind: dim_ids(conn, kind, values) for kind, values in (where or {}).items()}
        first_day, partial = _window(since)
        accumulate(acc, conn.execute(_rollup(by, first_day, ids)))
        if partial is not None:
            accumulate(acc, conn.execute(raw_sums(DAY_MS if by == "day" else by, partial, ids)))
        names = {} if by == "day" else _dim_names(conn)
    out = [UsageRow(_label(by, k, names), *sums) for k, sums in acc.items()]
    return sorted(out, key=lambda row: (row.name if by == "day" else -row.cost_pusd, row.name))


DAY_MS = schema.DAY_MS
SUMS = schema.DAILY_SUMS  # what a report adds up, in UsageRow's field order


def _window(since: float | None) -> tuple[int | None, tuple[int, int] | None]:
    """(first whole day read from the rollup, raw [start, end) ms range of a partial first day)."""
    if since is None:
        return None, None
    ms = int(since * 1000)
    day, rest = divmod(ms, DAY_MS)
    if rest == 0:
        return day, None
    return day + 1, (ms, (day + 1) * DAY_MS)


def _rollup(by: str, first_day: int | None, ids: dict[str, list[int]]) -> Any:
    d = schema.daily
    key = d.c.day if by == "day" else d.c[GROUPS[by]]
    stmt = select(key, *(func.sum(d.c[s]) for s in SUMS)).group_by(key)
    if first_day is not None:
        stmt = stmt.where(d.c.day >= first_day)
    for kind, values in ids.items():
        stmt = stmt.where(d.c[GROUPS[kind]].in_(values))
    return stmt


def raw_sums(by: str | int, window: tuple[int, int | None], ids: dict[str, list[int]]) -> Any:
    """SUMS from the raw rows in the [start, end) ms window (end None: open), grouped by a dimension (`by`
    a GROUPS name) or by time buckets (`by` the bucket's width in ms); `ids` as from `dim_ids`."""
    r = schema.requests
    key = r.c.ts_ms.op("/")(by) if isinstance(by, int) else func.coalesce(r.c[GROUPS[by]], 0)
    stmt = (
        select(
            key,
            func.count(),
            func.sum((r.c.status >= 400).cast(Integer)),
            func.sum(r.c.prompt_tokens),
            func.sum(r.c.completion_tokens),
            func.sum(r.c.cached_tokens),
            func.coalesce(func.sum(r.c.cost_pusd), 0),
            func.sum(r.c.cost_pusd.is_(None).cast(Integer)),
        )
        .where(r.c.ts_ms >= window[0])
        .group_by(key)
    )
    if window[1] is not None:
        stmt = stmt.where(r.c.ts_ms < window[1])
    for kind, values in ids.items():
        stmt = stmt.where(r.c[GROUPS[kind]].in_(values))
    return stmt


def accumulate(acc: dict[Any, list[int]], rows: Any) -> None:
    for key, *sums in rows:
        slot = acc.setdefault(int(key or 0), [0] * len(SUMS))
        for i, value in enumerate(sums):
            slot[i] += int(value or 0)


def _label(by: str, key: int, names: dict[int, str]) -> str:
    if by == "day":
        return datetime.fromtimestamp(key * 86400, UTC).strftime("%Y-%m-%d")
    return names.get(key, "-")


def totals(engine: Engine, since: float | None = None) -> UsageRow:
    rows = usage_report(engine, "model", since)
    sums = {f: sum(getattr(r, f) for r in rows) for f in SUMS}
    return UsageRow(name="total", **sums)


def dim_ids(conn: Any, kind: str, values: set[str]) -> list[int]:
    if not values:
        return []
    d = schema.dims
    return [i for (i,) in conn.execute(select(d.c.id).where(d.c.kind == kind, d.c.value.in_(sorted(values))))]


def _dim_names(conn: Any) -> dict[int, str]:
    return {i: v for i, v in conn.execute(select(schema.dims.c.id, schema.dims.c.value))}


def spend_by(engine: Engine, kind: str, since: float) -> dict[str, int]:
    """Settled cost (pico-USD) per key, user or project since `since`: budgets are seeded from it."""
    return {row.name: row.cost_pusd for row in usage_report(engine, kind, since)}
