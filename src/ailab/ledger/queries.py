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

GROUPS = {
    "model": "group_dim",
    "deployment": "deployment_dim",
    "provider": "provider_dim",
    "key": "key_dim",
    "user": "user_dim",
    "project": "project_dim",
    "error": "error_dim",
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
        return Decimal(self.cost_pusd) / schema.PICO

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
    project id) is in the given set — an empty set matches nothing."""
    if by not in BY_CHOICES:
        raise ValueError(f"--by {by!r}: choose one of {', '.join(BY_CHOICES)}")
    r = schema.requests
    key = _day_expr(engine) if by == "day" else r.c[GROUPS[by]]
    stmt = select(
        key.label("k"),
        func.count(),
        func.sum((r.c.status >= 400).cast(Integer)),
        func.sum(r.c.prompt_tokens),
        func.sum(r.c.completion_tokens),
        func.sum(r.c.cached_tokens),
        func.sum(r.c.cost_pusd),
        func.sum(r.c.cost_pusd.is_(None).cast(Integer)),
    ).group_by(key)
    if since is not None:
        stmt = stmt.where(r.c.ts_ms >= int(since * 1000))
    with engine.connect() as conn:
        for kind, values in (where or {}).items():
            stmt = stmt.where(r.c[GROUPS[kind]].in_(_dim_ids(conn, kind, values)))
        rows = conn.execute(stmt).all()
        names = {} if by == "day" else _dim_names(conn)
    out = [
        UsageRow(
            name=str(k) if by == "day" else names.get(k, "-"),
            requests=int(n),
            errors=int(e or 0),
            prompt_tokens=int(p or 0),
            completion_tokens=int(c or 0),
            cached_tokens=int(ca or 0),
            cost_pusd=int(cost or 0),
            unpriced=int(unp or 0),
        )
        for k, n, e, p, c, ca, cost, unp in rows
    ]
    return sorted(out, key=lambda row: (row.name if by == "day" else -row.cost_pusd, row.name))


def totals(engine: Engine, since: float | None = None) -> UsageRow:
    rows = usage_report(engine, "model", since)
    fields = (
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_pusd",
        "unpriced",
    )
    sums = {f: sum(getattr(r, f) for r in rows) for f in fields}
    return UsageRow(name="total", **sums)


def _dim_ids(conn: Any, kind: str, values: set[str]) -> list[int]:
    if not values:
        return []
    d = schema.dims
    return [i for (i,) in conn.execute(select(d.c.id).where(d.c.kind == kind, d.c.value.in_(sorted(values))))]


def _dim_names(conn: Any) -> dict[int, str]:
    return {i: v for i, v in conn.execute(select(schema.dims.c.id, schema.dims.c.value))}


def _day_expr(engine: Engine) -> Any:
    ts = schema.requests.c.ts_ms
    if engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d", ts / 1000, "unixepoch")
    return func.to_char(func.to_timestamp(ts / 1000.0).op("AT TIME ZONE")("UTC"), "YYYY-MM-DD")


def spend_by(engine: Engine, kind: str, since: float) -> dict[str, int]:
    """Settled cost (pico-USD) per key, user or project since `since`: budgets are seeded from it."""
    r = schema.requests
    column = r.c[GROUPS[kind]]
    stmt = (
        select(schema.dims.c.value, func.sum(r.c.cost_pusd))
        .join(schema.dims, schema.dims.c.id == column)
        .where(r.c.ts_ms >= int(since * 1000))
        .group_by(schema.dims.c.value)
    )
    with engine.connect() as conn:
        return {value: int(total or 0) for value, total in conn.execute(stmt)}
