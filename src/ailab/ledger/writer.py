"""The batched ledger writer: a background thread that owns all database writes of usage events.

The hot path only appends to a deque (no lock, no I/O). The thread prices events, interns dimension strings,
and inserts in batches. On stop it drains everything; a batch the database refuses is retried, and if the
database stays down at shutdown the rows are spilled to a JSONL file that the next start re-imports — the
ledger never silently loses a row (the `dropped` counter exists to prove it stays 0).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from ailab.ledger import schema
from ailab.ledger.events import UsageEvent
from ailab.ledger.pricing import PriceBook
from ailab.ledger.rows import (
    COLUMNS,
    Batch,
    DimSet,
    dimset_key,
    insert_rows,
    make_dimset,
    null_marker,
    write_batch,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
MAX_DIMSETS = 100_000  # cached key/user/project/group/deployment/error combinations


class LedgerWriter:
    """`batch_size` is the most rows one transaction takes: the writer writes whatever is queued when it
    wakes, so in steady traffic its transactions stay small and only a backlog fills them. Large transactions
    are what make a backlog cheap to catch up: the daily rollup is upserted once per (day, dimensions) per
    transaction, and per row that is most of the difference between 500-row and 20,000-row transactions."""

    def __init__(
        self,
        engine: Engine,
        prices: PriceBook,
        spill_dir: Path,
        batch_size: int = 20_000,
        flush_interval: float = 0.25,
        on_written: Callable[[list[tuple[UsageEvent, int | None]]], None] | None = None,
        on_lost: Callable[[str, int], None] | None = None,
        max_queue: int = 100_000,
    ) -> None:
        self.engine = engine
        self.prices = prices
        self.spill_dir = spill_dir
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.on_written = on_written
        self.on_lost = on_lost
        self.max_queue = max_queue
        self.queue: deque[UsageEvent] = deque()
        self.written = 0
        self.dropped = 0
        self.spilled = 0
        self._dims: dict[tuple[str, str], int] = {}
        self._dimsets: dict[tuple[Any, ...], DimSet] = {}
        self._null = null_marker(engine.dialect.name)
        self._serial = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ailab-ledger", daemon=True)

    # -- hot path --------------------------------------------------------------------------------------

    def submit(self, event: UsageEvent) -> None:
        self.queue.append(event)  # deque.append is atomic; the writer thread polls

    @property
    def depth(self) -> int:
        return len(self.queue)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._import_spills()
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue; whatever the database does not take in time is spilled to disk."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.queue:
            self._spill(self._drain(len(self.queue)))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything submitted so far is written (tests and CLI use this)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while (self.queue or self._busy) and time.monotonic() < deadline:
            time.sleep(0.005)

    _busy = False

    def _run(self) -> None:
        while True:
            if not self.queue:
                if self._stop.is_set():
                    return
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                continue
            self._busy = True
            try:
                self._write_with_retry(self._drain(self.batch_size))
            finally:
                self._busy = False
            if len(self.queue) < self.batch_size and not self._stop.is_set():
                # Let rows gather for one interval: a transaction per handful of rows costs many times
                # more CPU a row (commit, rollup upsert), taken from the event loop (flush() cuts it short).
                self._wake.wait(self.flush_interval)
                self._wake.clear()

    def _drain(self, n: int) -> list[UsageEvent]:
        pop = self.queue.popleft
        out: list[UsageEvent] = []
        # The queue only grows behind our back, unless stop() drains it after a timed-out join.
        with suppress(IndexError):
            out.extend(pop() for _ in range(min(n, len(self.queue))))
        return out

    def _write_with_retry(self, events: list[UsageEvent]) -> None:
        delay = 0.1
        while True:
            try:
                self._write(events)
                return
            except SQLAlchemyError as exc:
                log.warning("ledger write failed (%s); retrying", type(exc).__name__)
                if self._stop.is_set() or len(self.queue) >= self.max_queue:
                    # Shutting down, or the backlog is at its bound: keep the rows on disk, not in memory.
                    self._spill(events)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # a bug must not stop the writer thread: keep the rows on disk, go on
                log.exception("ledger write failed unexpectedly; %d rows spilled to disk", len(events))
                self._spill(events)
                return

    def _write(self, events: list[UsageEvent]) -> None:
        batch = Batch(events, self._dimsets, self._dimset, self._pricing_failed, self._null)
        with self._transaction() as conn:
            write_batch(conn, batch)
        self.written += len(events)
        if self.on_written:
            self.on_written(list(zip(events, batch.costs, strict=True)))

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """SQLite: take the write lock first (BEGIN IMMEDIATE, waiting out busy_timeout for another writer).
        A transaction that began as a reader (interning a dimension reads first) could not become the writer
        once another process, e.g. the other gateway worker's writer, had committed since: SQLITE_BUSY at
        once, which busy_timeout does not wait out."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _cost(self, ev: UsageEvent) -> int | None:
        if ev.priced:
            return ev.cost_pusd
        try:
            return self.prices.cost_pusd(ev.deployment, ev.usage, ev.billed_s, ev.status >= 400)
        except (ArithmeticError, ValueError, TypeError):
            self._pricing_failed(ev)
            return None

    @staticmethod
    def _pricing_failed(ev: UsageEvent) -> None:
        log.exception("pricing failed for %s; cost left unknown", ev.group)

    def _dimset(self, ev: UsageEvent) -> DimSet:
        if len(self._dimsets) >= MAX_DIMSETS:  # bound the cache; ids stay in self._dims
            self._dimsets.clear()
        dims = [self._dim(kind, value) for kind, value in event_dims(ev).items()]
        self._serial += 1  # never reused: a batch's rollup sums are keyed by it, even across a cache clear
        found = make_dimset(self._serial, dims, self.prices.pricer(ev.deployment), self._null)
        self._dimsets[dimset_key(ev)] = found
        return found

    def _dim(self, kind: str, value: str | None) -> int | None:
        """A dimension's id; a new one is interned in its own short transaction, committed whatever becomes
        of the rows that use it (an unused dimension is harmless; an id that was rolled back would not be)."""
        if value is None:
            return None
        key = (kind, value)
        found = self._dims.get(key)
        if found is None:
            with self._transaction() as conn:
                found = intern_dim(conn, kind, value)
            self._dims[key] = found
        return found

    # -- spill files: the last resort when the database is unavailable at shutdown ----------------------

    def _spill(self, events: list[UsageEvent]) -> None:
        if not events:
            return
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            path = self.spill_dir / f"ledger-spill-{time.time_ns()}.jsonl"
            with path.open("wb") as f:
                for ev in events:
                    f.write(orjson.dumps(spill_record(ev, self._cost(ev))) + b"\n")
            self.spilled += len(events)
            self._report("spilled", len(events))
            log.warning("database unavailable: %d ledger rows spilled to %s", len(events), path)
        except OSError:
            self.dropped += len(events)
            self._report("dropped", len(events))
            log.exception("could not spill %d ledger rows", len(events))

    def _report(self, kind: str, n: int) -> None:
        if self.on_lost is not None:
            self.on_lost(kind, n)

    def _import_spills(self) -> None:
        for path in sorted(self.spill_dir.glob("ledger-spill-*.jsonl")):
            records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
            rows = [self._spilled_row(r) for r in records]
            with self._transaction() as conn:
                insert_rows(conn, rows)
            path.unlink()
            log.info("re-imported %d spilled ledger rows from %s", len(records), path.name)

    def _spilled_row(self, rec: dict[str, Any]) -> tuple[Any, ...]:
        row = {"cache_write_1h_tokens": 0, **rec["row"]}  # spilled before the column existed: none
        for kind, value in rec["dims"].items():
            row[f"{kind}_dim"] = self._dim(kind, value)
        return tuple(row.get(c) for c in COLUMNS)


def intern_dim(conn: Connection, kind: str, value: str) -> int:
    """The id of (kind, value) in ledger_dims, added if missing; safe against another writer adding it."""
    where = select(schema.dims.c.id).where(schema.dims.c.kind == kind, schema.dims.c.value == value)
    found = conn.execute(where).scalar()
    if found is None:
        add = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
        conn.execute(add(schema.dims).values(kind=kind, value=value).on_conflict_do_nothing())
        found = conn.execute(where).scalar_one()
    return int(found)


def spill_record(ev: UsageEvent, cost: int | None) -> dict[str, Any]:
    """An event as plain data, priced, ready to insert on the next start."""
    return {"dims": event_dims(ev), "row": event_columns(ev, cost)}


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
