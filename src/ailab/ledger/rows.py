"""Ledger rows as tuples in a fixed column order, inserted with one driver-level executemany, and the
daily rollup upserted from the same tuples (so the two can never disagree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ailab.ledger import schema
from ailab.ledger.events import UsageEvent

COLUMNS = (
    "request_id",
    "ts_ms",
    "endpoint",
    "key_dim",
    "user_dim",
    "project_dim",
    "group_dim",
    "deployment_dim",
    "provider_dim",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_dim",
    "cost_pusd",
    "flags",
    "retries",
)
_AT = {name: i for i, name in enumerate(COLUMNS)}
_DIM_AT = tuple(_AT[d] for d in schema.DAILY_DIMS)
_TS, _STATUS, _COST = _AT["ts_ms"], _AT["status"], _AT["cost_pusd"]
_P, _C, _CA = _AT["prompt_tokens"], _AT["completion_tokens"], _AT["cached_tokens"]
DAY_MS = 86_400_000

Row = tuple[Any, ...]


def event_values(ev: UsageEvent, cost: int | None, dims: Sequence[int | None]) -> Row:
    """`dims`: key, user, project, group, deployment, provider, error dimension ids, in that order."""
    u = ev.usage
    flags = (schema.FLAG_STREAM if ev.stream else 0) | (schema.FLAG_ESTIMATED if u.estimated else 0)
    key, user, project, group, deployment, provider, error = dims
    return (
        ev.request_id,
        int(ev.ts * 1000),
        ev.endpoint,
        key,
        user,
        project,
        group,
        deployment,
        provider,
        u.prompt_tokens,
        u.completion_tokens,
        u.cached_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        round(ev.latency_s * 1000),
        None if ev.ttft_s is None else round(ev.ttft_s * 1000),
        ev.status,
        error,
        cost,
        flags,
        ev.retries,
    )


def _placeholders(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def insert_rows(conn: Connection, rows: list[Row]) -> None:
    if not rows:
        return
    # Identifiers are constants of this module; values are bound parameters.
    sql = f"INSERT INTO ledger_requests ({', '.join(COLUMNS)}) VALUES ({_placeholders(conn, len(COLUMNS))})"
    conn.exec_driver_sql(sql, rows)
    _upsert_daily(conn, rows)


def _upsert_daily(conn: Connection, rows: list[Row]) -> None:
    totals: dict[tuple[int, ...], list[int]] = {}
    for r in rows:
        key = (r[_TS] // DAY_MS, *(r[i] or 0 for i in _DIM_AT))
        acc = totals.get(key)
        if acc is None:
            acc = totals[key] = [0, 0, 0, 0, 0, 0, 0]
        cost = r[_COST]
        acc[0] += 1
        acc[1] += r[_STATUS] >= 400
        acc[2] += r[_P]
        acc[3] += r[_C]
        acc[4] += r[_CA]
        acc[5] += cost or 0
        acc[6] += cost is None
    cols = ("day", *schema.DAILY_DIMS, *schema.DAILY_SUMS)
    keys = ", ".join(("day", *schema.DAILY_DIMS))
    updates = ", ".join(f"{s} = ledger_daily.{s} + excluded.{s}" for s in schema.DAILY_SUMS)
    sql = (
        f"INSERT INTO ledger_daily ({', '.join(cols)}) VALUES ({_placeholders(conn, len(cols))}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    )
    conn.exec_driver_sql(sql, [(*k, *v) for k, v in totals.items()])
