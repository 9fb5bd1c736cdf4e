"""Usage over time: totals per hour (from the hourly narrow totals, `ledger_totals`) or per day (through
`usage_report`), for charts. Empty buckets are filled with zeros so a chart's x axis is even."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ailab.ledger.queries import SUMS, accumulate, dim_ids, narrow_kind, narrow_sums, raw_sums, usage_report
from ailab.ledger.schema import DAY_MS, HOUR_MS, SPAN_HOUR

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
    """Per hour since `since`: whole hours from the narrow totals (no filter or one); the partial first hour
    (or everything, under several filters) from raw rows by the reports' own query (`queries.raw_sums`)."""
    acc: dict[int, list[int]] = {}
    ms = int(since * 1000)
    with engine.connect() as conn:
        ids = {kind: dim_ids(conn, kind, values) for kind, values in where.items()}
        kind = narrow_kind("day", ids)
        if kind is None:
            accumulate(acc, conn.execute(raw_sums(HOUR_MS, (ms, None), ids)))
        else:
            hour = -(-ms // HOUR_MS)
            values = ids.get(kind) if kind else None
            accumulate(acc, conn.execute(narrow_sums(SPAN_HOUR, kind, HOUR_MS, (hour, None), values)))
            if ms < hour * HOUR_MS:
                accumulate(acc, conn.execute(raw_sums(HOUR_MS, (ms, hour * HOUR_MS), ids)))
    at = [SUMS.index(f) for f in SERIES_FIELDS]
    return {k: dict(zip(SERIES_FIELDS, (sums[i] for i in at), strict=True)) for k, sums in acc.items()}
