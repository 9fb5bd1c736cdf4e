"""Ledger reads the console needs beyond the usage report: the live window of the overview and the latest
rows of the Requests page. Both read raw rows through the time index (`ix_ledger_requests_ts`), bounded by
a time window or a row limit, so they cost the same on a 10M-row ledger as on a small one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from ailab.ledger import GROUPS, schema

# Filter name -> the kind its values are interned under in `ledger_dims` (the model group is "group").
DIM_KIND = {name: ("group" if name == "model" else name) for name in GROUPS}

LIVE_WINDOW_S = 300
LIVE_ROW_CAP = 50_000  # a busier window is summarised from its latest rows


@dataclass
class Live:
    window_s: float
    requests: int
    errors: int
    tokens: int
    p50_ms: float | None
    p95_ms: float | None
    ttft_p50_ms: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.window_s

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.window_s


def dim_ids(engine: Engine, where: dict[str, set[str]]) -> dict[str, list[int]]:
    d = schema.dims
    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for kind, values in where.items():
            stmt = select(d.c.id).where(d.c.kind == DIM_KIND[kind], d.c.value.in_(sorted(values)))
            out[kind] = [i for (i,) in conn.execute(stmt)] if values else []
    return out


def _scoped(stmt: Any, ids: dict[str, list[int]]) -> Any:
    r = schema.requests
    for kind, values in ids.items():
        stmt = stmt.where(r.c[GROUPS[kind]].in_(values))
    return stmt


def live(engine: Engine, where: dict[str, set[str]], window_s: float = LIVE_WINDOW_S) -> Live:
    """Requests/s, error rate, latency percentiles, TTFT and tokens/s over the last `window_s` seconds."""
    r = schema.requests
    since = int((time.time() - window_s) * 1000)
    stmt = select(r.c.status, r.c.latency_ms, r.c.ttft_ms, r.c.prompt_tokens + r.c.completion_tokens).where(
        r.c.ts_ms >= since
    )
    stmt = _scoped(stmt, dim_ids(engine, where)).order_by(r.c.ts_ms.desc()).limit(LIVE_ROW_CAP)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    latencies = sorted(row[1] for row in rows)
    ttfts = sorted(row[2] for row in rows if row[2] is not None)
    return Live(
        window_s=window_s,
        requests=len(rows),
        errors=sum(1 for row in rows if row[0] >= 400),
        tokens=sum(row[3] or 0 for row in rows),
        p50_ms=_quantile(latencies, 0.5),
        p95_ms=_quantile(latencies, 0.95),
        ttft_p50_ms=_quantile(ttfts, 0.5),
    )


def _quantile(sorted_values: list[int], q: float) -> float | None:
    if not sorted_values:
        return None
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


# -- requests -----------------------------------------------------------------------------------------

REQUEST_FILTERS = ("model", "key", "user", "project", "error")


def latest_requests(
    engine: Engine,
    where: dict[str, set[str]],
    *,
    status: str | None = None,
    since_ms: int | None = None,
    limit: int = 100,
    row_id: int | None = None,
) -> list[dict[str, Any]]:
    """The latest ledger rows (newest first) with their dimensions as values; `where` filters dimensions
    by value (the caller's scope and the page's filters), `status` is 'ok' or 'error'."""
    r = schema.requests
    joins = {kind: aliased(schema.dims) for kind in GROUPS}
    path = aliased(schema.dims)  # not a report dimension (not in GROUPS), shown on a request's page
    cols: list[Any] = [r, *(joins[k].c.value.label(k) for k in GROUPS), path.c.value.label("path")]
    frm: Any = r
    for kind, d in joins.items():
        frm = frm.outerjoin(d, d.c.id == r.c[GROUPS[kind]])
    frm = frm.outerjoin(path, path.c.id == r.c.path_dim)
    stmt = select(*cols).select_from(frm)
    stmt = _scoped(stmt, dim_ids(engine, where))
    if status == "ok":
        stmt = stmt.where(r.c.status < 400)
    elif status == "error":
        stmt = stmt.where(r.c.status >= 400)
    if since_ms is not None:
        stmt = stmt.where(r.c.ts_ms >= since_ms)
    if row_id is not None:  # the primary key: one request's page stays a point read on any ledger size
        stmt = stmt.where(r.c.id == row_id)
    stmt = stmt.order_by(r.c.ts_ms.desc(), r.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(stmt)]
    for row in rows:
        row["stream"] = bool(row["flags"] & schema.FLAG_STREAM)
        row["estimated"] = bool(row["flags"] & schema.FLAG_ESTIMATED)
        row["endpoint_name"] = schema.ENDPOINTS.get(row["endpoint"], str(row["endpoint"]))
    return rows


def dim_values(engine: Engine, kind: str, limit: int = 500) -> list[str]:
    """The values a dimension has taken (for the filter pickers)."""
    d = schema.dims
    stmt = select(d.c.value).where(d.c.kind == DIM_KIND[kind]).order_by(d.c.value).limit(limit)
    with engine.connect() as conn:
        return [v for (v,) in conn.execute(stmt)]
