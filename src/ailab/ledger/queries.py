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

    Nothing here scans rows in proportion to the ledger: with no filter, or one filter of the kind reported
    on (or by day), the narrow totals (`ledger_totals`) give whole days, then whole hours of the first day,
    and raw rows only the partial first hour (through the time index). Other filters read the daily rollup
    (every dimension combination of the window's days) and the raw rows of the partial first day.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"--by {by!r}: choose one of {', '.join(BY_CHOICES)}")
    acc: dict[Any, list[int]] = {}
    where = where or {}
    with engine.connect() as conn:
        ids = {kind: dim_ids(conn, kind, values) for kind, values in where.items()}
        narrow = narrow_kind(by, ids)
        if narrow is not None:
            _narrow_report(conn, acc, by, narrow, since, ids)
        else:
            first_day, partial = _window(since)
            accumulate(acc, conn.execute(_rollup(by, first_day, ids)))
            if partial is not None:
                accumulate(acc, conn.execute(raw_sums(DAY_MS if by == "day" else by, partial, ids)))
        names = {} if by == "day" else _dim_names(conn)
    out = [UsageRow(_label(by, k, names), *sums) for k, sums in acc.items()]
    return sorted(out, key=lambda row: (row.name if by == "day" else -row.cost_pusd, row.name))


DAY_MS = schema.DAY_MS
HOUR_MS = schema.HOUR_MS
SUMS = schema.DAILY_SUMS  # what a report adds up, in UsageRow's field order
KINDS = {g: i + 1 for i, g in enumerate(schema.DAILY_DIMS)}  # GROUPS' column -> ledger_totals.kind


def narrow_kind(by: str, ids: dict[str, list[int]]) -> str | None:
    """The GROUPS name whose narrow totals answer this report ("" for the totals of everything), or None
    when the filters need the daily rollup's dimension combinations."""
    if len(ids) > 1:
        return None
    if not ids:
        return "" if by == "day" else by
    (kind,) = ids
    return kind if by in (kind, "day") else None


def _narrow_report(
    conn: Any, acc: dict[Any, list[int]], by: str, kind: str, since: float | None, ids: dict[str, list[int]]
) -> None:
    """Whole days, then whole hours, from ledger_totals; the partial first hour from raw rows."""
    values = ids.get(kind) if kind else None
    if since is None:
        accumulate(acc, conn.execute(narrow_sums(schema.SPAN_DAY, kind, by, None, values)))
        return
    ms = int(since * 1000)
    hour = -(-ms // HOUR_MS)  # the first whole hour
    day = -(-hour // 24)  # the first whole day
    accumulate(acc, conn.execute(narrow_sums(schema.SPAN_DAY, kind, by, (day, None), values)))
    if hour < day * 24:
        accumulate(acc, conn.execute(narrow_sums(schema.SPAN_HOUR, kind, by, (hour, day * 24), values)))
    if ms < hour * HOUR_MS:
        accumulate(acc, conn.execute(raw_sums(DAY_MS if by == "day" else by, (ms, hour * HOUR_MS), ids)))


def narrow_sums(
    span: int, kind: str, by: str | int, window: tuple[int, int | None] | None, values: list[int] | None
) -> Any:
    """SUMS from ledger_totals: `span` hours or days of one `kind` ("" everything) in the [start, end)
    bucket window, grouped by the dimension (`by` a GROUPS name) or by time (`by` "day", or a bucket width in
    ms); `values` keeps only those dimension ids."""
    t = schema.totals
    if isinstance(by, int) or by == "day":
        # Buckets of `step` ms made of whole hours or days (a day of 24 hours, a week of 7 days, ...).
        step = DAY_MS if isinstance(by, str) else by
        per = step // (HOUR_MS if span == schema.SPAN_HOUR else DAY_MS)
        key: Any = t.c.t if per == 1 else t.c.t.op("/")(per)
    else:
        key = t.c.dim
    stmt = (
        select(key, *(func.sum(t.c[s]) for s in SUMS))
        .where(t.c.span == span, t.c.kind == (KINDS[GROUPS[kind]] if kind else schema.KIND_ALL))
        .group_by(key)
    )
    if window is not None:
        stmt = stmt.where(t.c.t >= window[0])
        if window[1] is not None:
            stmt = stmt.where(t.c.t < window[1])
    if values is not None:
        stmt = stmt.where(t.c.dim.in_(values))
    return stmt


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
    """The interned ids of a filter's values; `kind` is a GROUPS name ("model" is interned as "group")."""
    if not values:
        return []
    d = schema.dims
    interned = GROUPS[kind].removesuffix("_dim") if kind in GROUPS else kind
    stmt = select(d.c.id).where(d.c.kind == interned, d.c.value.in_(sorted(values)))
    return [i for (i,) in conn.execute(stmt)]


def _dim_names(conn: Any) -> dict[int, str]:
    return {i: v for i, v in conn.execute(select(schema.dims.c.id, schema.dims.c.value))}


def spend_by(engine: Engine, kind: str, since: float) -> dict[str, int]:
    """Settled cost (pico-USD) per key, user or project since `since`: budgets are seeded from it."""
    return {row.name: row.cost_pusd for row in usage_report(engine, kind, since)}
