"""A usage event as plain data, priced: the spill file record and the journal line (both re-imported by
`ailab.ledger.recovery` as the same kind of record: `{"dims": {...}, "row": {...}}`)."""

from __future__ import annotations

from typing import Any

import orjson

from ailab.ledger import schema
from ailab.ledger.events import UsageEvent
from ailab.ledger.rows import COLUMNS

Row = dict[str, Any]
# 2 added cache_write_1h_tokens, 3 the app dimension, 4 the fallback path; older lines are still read
JOURNAL_VERSION = 4
DIM_KINDS = ("key", "user", "project", "group", "deployment", "provider", "error", "app", "path")
# event_columns() in order: the ledger's columns (`rows.COLUMNS`) but the interned dimensions. A journal line
# is a flat list, [version, *dims, *columns] (tests check the order): a new column goes at the end of COLUMNS,
# with a new JOURNAL_VERSION.
ROW_COLUMNS = tuple(c for c in COLUMNS if not c.endswith("_dim"))

_VERSION_COLUMNS = {1: ROW_COLUMNS[:-1], 2: ROW_COLUMNS, 3: ROW_COLUMNS, JOURNAL_VERSION: ROW_COLUMNS}
_VERSION_DIMS = {1: DIM_KINDS[:-2], 2: DIM_KINDS[:-2], 3: DIM_KINDS[:-1], JOURNAL_VERSION: DIM_KINDS}


def spill_record(ev: UsageEvent, cost: int | None) -> dict[str, Any]:
    """An event as plain data, priced, ready to insert on the next start."""
    return {"dims": event_dims(ev), "row": event_columns(ev, cost)}


def journal_line(ev: UsageEvent, cost: int | None) -> bytes:
    """The same as spill_record, as one compact line: a flat JSON list, built without a dict (hot path)."""
    dep = ev.deployment
    u = ev.usage
    ttft = ev.ttft_s
    return orjson.dumps(
        [
            JOURNAL_VERSION,
            ev.key_id,
            ev.user_id,
            ev.project_id,
            ev.group,
            dep.id if dep else None,
            dep.provider_label if dep else None,
            ev.error_type,
            ev.app,
            ev.path,
            ev.request_id,
            int(ev.ts * 1000),
            ev.endpoint,
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
            round(ev.latency_s * 1000),
            None if ttft is None else round(ttft * 1000),
            ev.status,
            cost,
            (schema.FLAG_STREAM if ev.stream else 0) | (schema.FLAG_ESTIMATED if u.estimated else 0),
            ev.retries,
            u.cache_write_1h_tokens,
        ],
        option=orjson.OPT_APPEND_NEWLINE,
    )


def journal_record(line: list[Any]) -> dict[str, Any] | None:
    """A journal line back as a spill record; None for a line of another version."""
    columns = _VERSION_COLUMNS.get(line[0]) if line else None
    kinds = _VERSION_DIMS.get(line[0]) if line else None
    if columns is None or kinds is None or len(line) != 1 + len(kinds) + len(columns):
        return None
    n = 1 + len(kinds)
    return {
        "dims": dict(zip(kinds, line[1:n], strict=True)),
        "row": dict(zip(columns, line[n:], strict=True)),
    }


def event_dims(ev: UsageEvent) -> dict[str, str | None]:
    dep = ev.deployment
    return {
        "key": ev.key_id,
        "user": ev.user_id,
        "project": ev.project_id,
        "group": ev.group,
        "deployment": dep.id if dep else None,
        "provider": dep.provider_label if dep else None,
        "error": ev.error_type,
        "app": ev.app,
        "path": ev.path,
    }


def event_columns(ev: UsageEvent, cost: int | None) -> Row:
    """The row's own columns (everything but the interned dimensions)."""
    u = ev.usage
    flags = (schema.FLAG_STREAM if ev.stream else 0) | (schema.FLAG_ESTIMATED if u.estimated else 0)
    return {
        "request_id": ev.request_id,
        "ts_ms": int(ev.ts * 1000),
        "endpoint": ev.endpoint,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "latency_ms": round(ev.latency_s * 1000),
        "ttft_ms": None if ev.ttft_s is None else round(ev.ttft_s * 1000),
        "status": ev.status,
        "cost_pusd": cost,
        "flags": flags,
        "retries": ev.retries,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
    }
