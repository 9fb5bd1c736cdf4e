"""Usage over time: totals per hour (from raw rows, for short ranges) or per day (from the daily rollup,
through `usage_report`), for charts. Empty buckets are filled with zeros so a chart's x axis is even."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, func, select

from ailab.ledger import schema
from ailab.ledger.queries import GROUPS, usage_report

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SERIES_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_pusd", "unpriced")


def usage_series(
    engine: Engine, since: float, bucket: str = "day", where: dict[str, set[str]] | None = None
) -> list[dict[str, Any]]:
    """[{"t": bucket start (UNIX s), requests, errors, prompt_tokens, completion_tokens, cost_pusd,
    unpriced}] from `since` to now, one entry per hour or day."""
    if bucket not in ("hour", "day"):
        raise ValueError("bucket: choose hour or day")
    step = HOUR_MS if bucket == "hour" else DAY_MS
    got = _hourly(engine, since, where or {}) if bucket == "hour" else _daily(engine, since, where)
    first = int(since * 1000) // step
    last = int(time.time() * 1000) // step
    empty = dict.fromkeys(SERIES_FIELDS, 0)
    return [{"t": b * step // 1000, **got.get(b, empty)} for b in range(first, last + 1)]


def _daily(engine: Engine, since: float, where: dict[str, set[str]] | None) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for row in usage_report(engine, "day", since, where=where):
        day = int(datetime.fromisoformat(row.name).replace(tzinfo=UTC).timestamp()) * 1000 // DAY_MS
        out[day] = {f: getattr(row, f) for f in SERIES_FIELDS}
    return out


def _hourly(engine: Engine, since: float, where: dict[str, set[str]]) -> dict[int, dict[str, int]]:
    r, d = schema.requests, schema.dims
    key = r.c.ts_ms.op("/")(HOUR_MS)
    stmt = (
        select(
            key,
            func.count(),
            func.sum((r.c.status >= 400).cast(Integer)),
            func.sum(r.c.prompt_tokens),
            func.sum(r.c.completion_tokens),
            func.coalesce(func.sum(r.c.cost_pusd), 0),
            func.sum(r.c.cost_pusd.is_(None).cast(Integer)),
        )
        .where(r.c.ts_ms >= int(since * 1000))
        .group_by(key)
    )
    with engine.connect() as conn:
        for kind, values in where.items():
            ids = select(d.c.id).where(d.c.kind == kind, d.c.value.in_(sorted(values) or [""]))
            stmt = stmt.where(r.c[GROUPS[kind]].in_(ids))
        return {
            int(k): dict(zip(SERIES_FIELDS, (int(v or 0) for v in vals), strict=True))
            for k, *vals in conn.execute(stmt)
        }
