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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from ailab.ledger import schema
from ailab.ledger.events import UsageEvent
from ailab.ledger.pricing import PriceBook
from ailab.ledger.rows import COLUMNS, event_values, insert_rows

log = logging.getLogger(__name__)

Row = dict[str, Any]


class LedgerWriter:
    def __init__(
        self,
        engine: Engine,
        prices: PriceBook,
        spill_dir: Path,
        batch_size: int = 500,
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
        self._dimsets: dict[tuple[str | None, ...], list[int | None]] = {}
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

    def _drain(self, n: int) -> list[UsageEvent]:
        out: list[UsageEvent] = []
        while self.queue and len(out) < n:
            out.append(self.queue.popleft())
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

    def _write(self, events: list[UsageEvent]) -> None:
        priced = [(ev, self._cost(ev)) for ev in events]
        with self.engine.begin() as conn:
            insert_rows(conn, [event_values(ev, cost, self._dims_of(conn, ev)) for ev, cost in priced])
        self.written += len(priced)
        if self.on_written:
            self.on_written(priced)

    def _cost(self, ev: UsageEvent) -> int | None:
        if ev.priced:
            return ev.cost_pusd
        try:
            return self.prices.cost_pusd(ev.deployment, ev.usage, ev.latency_s, ev.status >= 400)
        except (ArithmeticError, ValueError, TypeError):
            log.exception("pricing failed for %s; cost left unknown", ev.group)
            return None

    def _dims_of(self, conn: Any, ev: UsageEvent) -> list[int | None]:
        dep = ev.deployment
        key = (
            ev.key_id,
            ev.user_id,
            ev.project_id,
            ev.group,
            dep.id if dep else None,
            dep.provider_label if dep else None,
            ev.error_type,
        )
        found = self._dimsets.get(key)
        if found is None:  # one lookup per row for the common case of a combination seen before
            found = self._dimsets[key] = [
                self._dim(conn, kind, value) for kind, value in event_dims(ev).items()
            ]
        return found

    def _dim(self, conn: Any, kind: str, value: str | None) -> int | None:
        if value is None:
            return None
        key = (kind, value)
        found = self._dims.get(key)
        if found is None:
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
            with self.engine.begin() as conn:
                insert_rows(conn, [self._spilled_row(conn, r) for r in records])
            path.unlink()
            log.info("re-imported %d spilled ledger rows from %s", len(records), path.name)

    def _spilled_row(self, conn: Any, rec: dict[str, Any]) -> tuple[Any, ...]:
        row = dict(rec["row"])
        for kind, value in rec["dims"].items():
            row[f"{kind}_dim"] = self._dim(conn, kind, value)
        return tuple(row.get(c) for c in COLUMNS)


def intern_dim(conn: Any, kind: str, value: str) -> int:
    found = conn.execute(
        select(schema.dims.c.id).where(schema.dims.c.kind == kind, schema.dims.c.value == value)
    ).scalar()
    if found is None:
        found = conn.execute(insert(schema.dims).values(kind=kind, value=value)).inserted_primary_key[0]
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
    }
