"""Ledger rows as tuples in a fixed column order, built from events in one pass that also prices them and sums
the daily rollup, then inserted with multi-row INSERT statements (COPY on PostgreSQL) and the rollup upserted
in the same transaction (so the two can never disagree)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

from ailab.db import driver_error, insert_many
from ailab.ledger import schema
from ailab.ledger.events import UsageEvent
from ailab.ledger.pricing import Pricer

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
    "cache_write_1h_tokens",
    "app_dim",
    "path_dim",
)
_AT = {name: i for i, name in enumerate(COLUMNS)}
_DIM_AT = tuple(_AT[d] for d in schema.DAILY_DIMS)
_TS, _STATUS, _COST = _AT["ts_ms"], _AT["status"], _AT["cost_pusd"]
_P, _C, _CA = _AT["prompt_tokens"], _AT["completion_tokens"], _AT["cached_tokens"]
DAY_MS = schema.DAY_MS
STREAM, ESTIMATED = schema.FLAG_STREAM, schema.FLAG_ESTIMATED

Row = tuple[Any, ...]
# (day, *DAILY_DIMS, 0 for a missing one) -> [requests, errors, prompt, completion, cached, cost, unpriced]
Daily = dict[tuple[int, ...], list[int]]
# The same keyed by hour: what a batch sums per row; the daily rollup and the narrow totals derive from it.
Hourly = Daily
# (span, kind, t, dim) -> the same sums (schema.totals)
Totals = dict[tuple[int, int, int, int], list[int]]
HOUR_MS = schema.HOUR_MS
_KINDS = range(1, len(schema.DAILY_DIMS) + 1)
# Rows built or inserted between two `pause()` calls of a Batch: the writer thread gives the GIL back that
# often, so the event loop of its process never waits long behind it (~0.1-0.3 ms of Python work a slice on
# a slow core, against CPython's 5 ms switch interval).
SLICE_ROWS = 64


# Python 3.11's sqlite3 binds None several times slower than an int (it first looks for an adapter, through a
# raised and cleared AttributeError), and a ledger row has a few. So for SQLite a missing value in a nullable
# column is built as SQLITE_NULL and the INSERT turns it back into NULL with NULLIF: none of those columns can
# hold a negative value (dimension ids start at 1; times and costs are >= 0). PostgreSQL rows keep None.
SQLITE_NULL = -1
NULLABLE = frozenset(c.name for c in schema.requests.columns if c.nullable and not c.primary_key)


def null_marker(dialect_name: str) -> int | None:
    """What Batch rows hold for NULL on this database."""
    return SQLITE_NULL if dialect_name == "sqlite" else None


# What every event with the same key/user/project/group/deployment/error/app/path shares: a serial number,
# its interned dimension ids (key, user, project, group, deployment, provider, error, app, path), its pricer
# and its rollup key columns. A plain tuple: the per-row loop unpacks it in one step.
DimSet = tuple[
    int,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    Pricer,
    tuple[int, ...],
]


def make_dimset(index: int, dims: Sequence[int | None], pricer: Pricer, null: int | None) -> DimSet:
    """`dims`: key, user, project, group, deployment, provider, error, app, path dimension ids, in that
    order; a missing one is stored as `null` (see `null_marker`)."""
    key, user, project, group, deployment, provider, error, app, path = (
        null if d is None else d for d in dims
    )
    by_name = {
        "group_dim": group,
        "deployment_dim": deployment,
        "provider_dim": provider,
        "key_dim": key,
        "user_dim": user,
        "project_dim": project,
        "error_dim": error,
        "app_dim": app,
    }
    daily = tuple(0 if by_name[d] in (None, null) else by_name[d] for d in schema.DAILY_DIMS)
    return (index, key, user, project, group, deployment, provider, error, app, path, pricer, daily)  # type: ignore[return-value]


def dimset_key(ev: UsageEvent) -> tuple[Any, ...]:
    return (ev.key_id, ev.user_id, ev.project_id, ev.group, ev.deployment, ev.error_type, ev.app, ev.path)


class Batch:
    """One transaction's worth of events as rows, built in one pass that also prices each event and sums the
    daily rollup. Built before the transaction, so the database's write lock (SQLite has one per database,
    shared by every gateway worker's writer) is held only while the database works."""

    def __init__(
        self,
        events: Sequence[UsageEvent],
        dimsets: dict[tuple[Any, ...], DimSet],
        resolve: Callable[[UsageEvent], DimSet],
        on_pricing_error: Callable[[UsageEvent], None],
        null: int | None = None,
        pause: Callable[[], None] | None = None,
        slice_rows: int = SLICE_ROWS,
    ) -> None:
        """`dimsets` maps `dimset_key(ev)` to its DimSet; `resolve` builds (and stores) a missing one. `null`:
        what a missing value is in a row (`null_marker`; the DimSets must have been made with the same).
        `pause` is called after every `slice_rows` rows built and inserted (the writer yields the GIL)."""
        self.events = events
        self.null = null
        self.pause = pause
        self.slice_rows = max(1, slice_rows)
        self.dimsets = dimsets
        self.resolve = resolve
        self.on_pricing_error = on_pricing_error
        self.rows: list[Row] = []
        self.costs: list[int | None] = []  # each event's price, in order (None: unknown)
        self._sums: dict[int, dict[int, list[int]]] = {}  # day -> DimSet index -> sums
        self._rollup_of: dict[int, tuple[int, ...]] = {}  # DimSet index -> its rollup key columns
        self._build()

    def hourly(self) -> Hourly:
        # Two DimSets can share rollup columns (equal deployments built twice, a cache cleared mid-batch):
        # their sums add up.
        out: Hourly = {}
        for h, per_set in self._sums.items():
            for i, acc in per_set.items():
                _add(out, (h, *self._rollup_of[i]), acc)
        return out

    def daily(self) -> Daily:
        return days_of(self.hourly())

    def _build(self) -> None:
        """One pass per event: a dimension-set lookup, the price, the row tuple, the rollup sums. One long
        loop on purpose: it runs for every row, and a function call per step would cost more than the step."""
        dimsets, resolve, rollup_of, null = self.dimsets, self.resolve, self._rollup_of, self.null
        add_row = self.rows.append
        add_cost = self.costs.append
        sums = self._sums
        hour = -1
        this_hour: dict[int, list[int]] = {}
        for ev in self._sliced(self.events):
            ds = dimsets.get(
                (
                    ev.key_id,
                    ev.user_id,
                    ev.project_id,
                    ev.group,
                    ev.deployment,
                    ev.error_type,
                    ev.app,
                    ev.path,
                )
            )
            if ds is None:
                ds = resolve(ev)
            index, key, user, project, group, deployment, provider, error, app, path, pricer, rollup = ds
            u = ev.usage
            status = ev.status
            if ev.priced:
                cost = ev.cost_pusd
            else:
                try:
                    cost = pricer(u, ev.billed_s, status >= 400)
                except (ArithmeticError, ValueError, TypeError):
                    self.on_pricing_error(ev)
                    cost = None
            ts = int(ev.ts * 1000)
            ttft = ev.ttft_s
            p, c, ca = u.prompt_tokens, u.completion_tokens, u.cached_tokens
            add_row(
                (
                    ev.request_id,
                    ts,
                    ev.endpoint,
                    key,
                    user,
                    project,
                    group,
                    deployment,
                    provider,
                    p,
                    c,
                    ca,
                    u.cache_write_tokens,
                    u.reasoning_tokens,
                    round(ev.latency_s * 1000),
                    null if ttft is None else round(ttft * 1000),
                    status,
                    error,
                    null if cost is None else cost,
                    (STREAM if ev.stream else 0) | (ESTIMATED if u.estimated else 0),
                    ev.retries,
                    u.cache_write_1h_tokens,
                    app,
                    path,
                )
            )
            add_cost(cost)
            if ts // HOUR_MS != hour:  # a batch almost always lies within one hour
                hour = ts // HOUR_MS
                this_hour = sums.setdefault(hour, {})
            acc = this_hour.get(index)
            if acc is None:
                acc = this_hour[index] = [0, 0, 0, 0, 0, 0, 0]
                rollup_of[index] = rollup
            acc[0] += 1
            if status >= 400:
                acc[1] += 1
            acc[2] += p
            acc[3] += c
            acc[4] += ca
            if cost is None:
                acc[6] += 1
            else:
                acc[5] += cost

    def _sliced(self, items: Sequence[Any]) -> Iterator[Any]:
        """`items`, with a `pause()` after every slice but the last."""
        step, pause = self.slice_rows, self.pause
        if pause is None or len(items) <= step:
            yield from items
            return
        for start in range(0, len(items), step):
            if start:
                pause()
            yield from items[start : start + step]

    def row_slices(self) -> Iterator[list[Row]]:
        """The rows in slices of `slice_rows`, with a `pause()` between two (one slice without a pause)."""
        rows, step = self.rows, self.slice_rows
        if self.pause is None or len(rows) <= step:
            yield rows
            return
        for start in range(0, len(rows), step):
            if start:
                self.pause()
            yield rows[start : start + step]


def write_batch(conn: Connection, batch: Batch) -> None:
    """Insert the batch's rows and upsert its rollup, in `conn`'s transaction."""
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, batch.row_slices())
    else:
        for rows in batch.row_slices():
            _insert_sqlite(conn, rows, batch.null)
    _upsert_rollups(conn, batch.hourly())


def _add(out: dict[Any, list[int]], key: Any, acc: list[int]) -> None:
    found = out.get(key)
    out[key] = list(acc) if found is None else [a + b for a, b in zip(found, acc, strict=True)]


def days_of(hourly: Hourly) -> Daily:
    """Hourly rollup sums added up per day."""
    out: Daily = {}
    for (h, *dims), acc in hourly.items():
        _add(out, (h // 24, *dims), acc)
    return out


def totals_of(hourly: Hourly) -> Totals:
    """The narrow totals (schema.totals) of hourly rollup sums: per hour and per day, for everything (kind
    0) and for each value of each dimension. Built from a batch's few dimension combinations, not its rows."""
    out: Totals = {}
    for (h, *dims), acc in hourly.items():
        d = h // 24
        _add(out, (schema.SPAN_HOUR, schema.KIND_ALL, h, 0), acc)
        _add(out, (schema.SPAN_DAY, schema.KIND_ALL, d, 0), acc)
        for kind, dim in zip(_KINDS, dims, strict=True):
            _add(out, (schema.SPAN_HOUR, kind, h, dim), acc)
            _add(out, (schema.SPAN_DAY, kind, d, dim), acc)
    return out


def daily_totals(rows: Sequence[Row]) -> Daily:
    """The daily rollup of any rows (tests check Batch.daily against it)."""
    return days_of(hourly_totals(rows))


def hourly_totals(rows: Sequence[Row]) -> Hourly:
    """The hourly rollup sums of any rows (spill re-import)."""
    totals: Hourly = {}
    for r in rows:
        key = (r[_TS] // HOUR_MS, *(r[i] or 0 for i in _DIM_AT))
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
    return totals


def _placeholders(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


_INSERT = f"INSERT INTO ledger_requests ({', '.join(COLUMNS)}) VALUES "


def _row_marks(null: int | None) -> str:
    """One row's placeholders (SQLite's `?`); with a `null` marker, NULLIF turns it back into NULL."""
    # The marker is a constant of this module; values are bound parameters.
    marks = (f"NULLIF(?, {int(null)})" if null is not None and c in NULLABLE else "?" for c in COLUMNS)
    return f"({', '.join(marks)})"


def _insert_sqlite(conn: Connection, rows: Sequence[Row], null: int | None) -> None:
    """Multi-row statements (ailab.db.bulk): one step each, where executemany stepped once per row."""
    insert_many(conn, _INSERT, _row_marks(null), rows, len(rows))


# Identifiers are constants of this module; values are bound parameters (or COPY data).
_COPY = f"COPY ledger_requests ({', '.join(COLUMNS)}) FROM STDIN"
_DAILY_COLS = ("day", *schema.DAILY_DIMS, *schema.DAILY_SUMS)
_UPSERT = (
    f"INSERT INTO ledger_daily ({', '.join(_DAILY_COLS)}) VALUES ({{marks}}) "
    f"ON CONFLICT ({', '.join(('day', *schema.DAILY_DIMS))}) DO UPDATE SET "
    + ", ".join(f"{s} = ledger_daily.{s} + excluded.{s}" for s in schema.DAILY_SUMS)
)


_TOTALS_COLS = (*schema.TOTALS_KEY, *schema.DAILY_SUMS)
_UPSERT_TOTALS = (
    f"INSERT INTO ledger_totals ({', '.join(_TOTALS_COLS)}) VALUES ({{marks}}) "
    f"ON CONFLICT ({', '.join(schema.TOTALS_KEY)}) DO UPDATE SET "
    + ", ".join(f"{s} = ledger_totals.{s} + excluded.{s}" for s in schema.DAILY_SUMS)
)


def insert_rows(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert ready-made rows (spill re-import) and upsert their rollup, in `conn`'s transaction."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, [rows])
    else:
        _insert_sqlite(conn, rows, None)
    _upsert_rollups(conn, hourly_totals(rows))


def _upsert_rollups(conn: Connection, hourly: Hourly) -> None:
    """The daily rollup and the narrow totals of these sums, in `conn`'s transaction."""
    if not hourly:
        return
    # Sorted, so that concurrent writers (one per gateway worker) lock the rollups' rows in one order.
    params = [(*k, *v) for k, v in sorted(days_of(hourly).items())]
    conn.exec_driver_sql(_UPSERT.format(marks=_placeholders(conn, len(_DAILY_COLS))), params)
    params = [(*k, *v) for k, v in sorted(totals_of(hourly).items())]
    conn.exec_driver_sql(_UPSERT_TOTALS.format(marks=_placeholders(conn, len(_TOTALS_COLS))), params)


def _copy_rows(conn: Connection, slices: Iterable[Sequence[Row]]) -> None:
    """PostgreSQL: COPY is several times faster than executemany for a batch of rows."""
    cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(_COPY) as copy:
            write = copy.write_row
            for rows in slices:
                for row in rows:
                    write(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn, _COPY, exc) from exc
    finally:
        cursor.close()
