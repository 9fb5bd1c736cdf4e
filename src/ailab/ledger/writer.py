"""The batched ledger writer: a background thread that owns all database writes of usage events.

The hot path appends to a deque and, unless the journal is off, writes the event as one line to this
process's journal file (one `write()`, see `ailab.ledger.journal`), so that a hard crash loses no answered
request. The thread prices events, interns dimension strings, and inserts in batches; a journal segment is
removed once all its rows are committed. On stop it drains everything; a batch the database refuses is
retried, and if the database stays down at shutdown the rows are spilled to a JSONL file that the next start
re-imports (with dead processes' journals, `ailab.ledger.recovery`) — the ledger never silently loses a row
(the `dropped` counter exists to prove it stays 0).
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
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ailab.ledger import schema
from ailab.ledger.events import UsageEvent
from ailab.ledger.journal import Journal, Segment, journal_dir
from ailab.ledger.pricing import PriceBook
from ailab.ledger.records import event_columns, event_dims, journal_line, spill_record
from ailab.ledger.recovery import existing_ids, recover
from ailab.ledger.rows import (
    SLICE_ROWS,
    Batch,
    DimSet,
    dimset_key,
    make_dimset,
    null_marker,
    write_batch,
)

log = logging.getLogger(__name__)

__all__ = ["LedgerWriter", "event_columns", "event_dims", "intern_dim", "spill_record"]
MAX_DIMSETS = 100_000  # cached key/user/project/group/deployment/error combinations
# How long the writer sleeps between two slices of a batch (rows.SLICE_ROWS). Long enough for the event
# loop thread, woken when the GIL is released, to take it: a thread that releases and at once retakes the
# GIL (sleep(0), SQLite's per-row steps) keeps it, and the loop then waits out the 5 ms switch interval.
GIL_PAUSE_S = 50e-6


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
        journal: bool = True,
        slice_rows: int = SLICE_ROWS,
        gil_pause: float = GIL_PAUSE_S,
    ) -> None:
        self.engine = engine
        self.prices = prices
        self.spill_dir = spill_dir
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.on_written = on_written
        self.on_lost = on_lost
        self.max_queue = max_queue
        self.slice_rows = slice_rows
        self.gil_pause = gil_pause
        self.queue: deque[UsageEvent] = deque()
        self.written = 0
        self.dropped = 0
        self.spilled = 0
        self.journal = Journal(journal_dir(spill_dir)) if journal else None
        self.write_error: str | None = None  # why the last write failed, until one succeeds (health)
        self._submitted = 0  # events submitted / events written or spilled, in queue order
        self._done = 0
        self._settled_cv = threading.Condition()  # notified by the writer thread as `_done` moves
        self._segments: deque[tuple[Segment, int]] = deque()  # finished segments, by events submitted
        self._keep_journal = False  # rows were lost to disk trouble: journals stay for the next start
        self._dims: dict[tuple[str, str], int] = {}
        self._dimsets: dict[tuple[Any, ...], DimSet] = {}
        self._null = null_marker(engine.dialect.name)
        self._serial = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ailab-ledger", daemon=True)

    # -- hot path --------------------------------------------------------------------------------------

    def submit(self, event: UsageEvent) -> None:
        journal = self.journal
        if journal is None:
            self.queue.append(event)  # deque.append is atomic; the writer thread polls
            self._submitted += 1
            return
        if not event.priced:  # priced once, here: the journal line carries the row's final cost
            event.cost_pusd = self._cost(event)
            event.priced = True
        try:
            finished = journal.append(journal_line(event, event.cost_pusd))
        except OSError:
            finished = None  # reported by the journal (health, log); the row is still written from memory
        self.queue.append(event)
        self._submitted += 1
        if finished is not None:
            self._segments.append((finished, self._submitted))

    @property
    def depth(self) -> int:
        return len(self.queue)

    @property
    def submitted(self) -> int:
        """Events submitted so far (`written` counts those in the database, `settled` those done with)."""
        return self._submitted

    @property
    def settled(self) -> int:
        """Events taken care of so far, in submission order: written, spilled to disk, or (if even the disk
        failed) dropped; the journal segments they complete are retired by then."""
        return self._done

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def problem(self) -> str | None:
        """Why rows are not reaching the ledger right now (database or journal trouble), or None."""
        journal = self.journal.error if self.journal is not None else None
        return self.write_error or journal

    def start(self) -> None:
        recover(self.spill_dir, self._dim, self._transaction)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue; whatever the database does not take in time is spilled to disk."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.queue:
            self._settled(self._drain(len(self.queue)), self._spill)
        if self.journal is not None:
            last = self.journal.detach()
            if last is not None:
                self._segments.append((last, self._submitted))
            self._retire()

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything submitted so far is written (tests and CLI use this). It cannot wait for
        an event not yet submitted: a caller expecting n events waits with `wait_settled(n)`."""
        self.wait_settled(self._submitted, timeout)

    def wait_settled(self, n: int, timeout: float = 10.0) -> bool:
        """Block until `n` events (counted from the start) are settled (see `settled`), waking the writer
        thread so it does not wait out its flush interval; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._settled_cv:
            while self._done < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                # Short slices: the wake-up may land just before the writer clears it for an earlier batch.
                self._settled_cv.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        while True:
            if not self.queue:
                if self._stop.is_set():
                    return
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                continue
            self._settled(self._drain(self.batch_size), self._write_with_retry)
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

    def _settled(self, events: list[UsageEvent], write: Callable[[list[UsageEvent]], bool]) -> None:
        """Write (or spill) a batch taken from the queue, then remove the journal segments it completes."""
        if not write(events):
            self._keep_journal = True
        with self._settled_cv:  # settled means its journal segments are retired too
            self._done += len(events)
            self._retire()
            self._settled_cv.notify_all()

    def _retire(self) -> None:
        while self._segments and self._segments[0][1] <= self._done:
            segment, _ = self._segments.popleft()
            segment.release() if self._keep_journal else segment.retire()

    def _write_with_retry(self, events: list[UsageEvent]) -> bool:
        """True once the rows are in the database or a spill file; False if they could not be kept."""
        delay = 0.1
        deduplicated = False
        while True:
            try:
                self._write(events)
                if self.write_error is not None:
                    log.warning("ledger writes succeed again")
                    self.write_error = None
                return True
            except SQLAlchemyError as exc:
                if isinstance(exc, IntegrityError) and not deduplicated:
                    # A request id already in the ledger: drop those rows, not the batch.
                    deduplicated = True
                    with suppress(SQLAlchemyError):
                        events = self._unknown_ids(events)
                        continue
                self.write_error = describe_db_error(exc)
                log.warning("ledger write failed (%s); retrying", self.write_error)
                if self._stop.is_set() or len(self.queue) >= self.max_queue:
                    # Shutting down, or the backlog is at its bound: keep the rows on disk, not in memory.
                    return self._spill(events)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a bug must not stop the writer thread: keep the rows on disk, go on
                self.write_error = f"unexpected {type(exc).__name__}"
                log.exception("ledger write failed unexpectedly; %d rows spilled to disk", len(events))
                return self._spill(events)

    def _unknown_ids(self, events: list[UsageEvent]) -> list[UsageEvent]:
        with self._transaction() as conn:
            known = existing_ids(conn, [ev.request_id for ev in events])
        fresh: dict[str, UsageEvent] = {}
        for ev in events:
            if ev.request_id not in known:
                fresh.setdefault(ev.request_id, ev)
        log.warning("%d ledger rows skipped: their request ids are in the ledger", len(events) - len(fresh))
        return list(fresh.values())

    def _write(self, events: list[UsageEvent]) -> None:
        pause = self._pause if self.gil_pause >= 0 else None
        batch = Batch(
            events, self._dimsets, self._dimset, self._pricing_failed, self._null, pause, self.slice_rows
        )
        with self._transaction() as conn:
            write_batch(conn, batch)
        self.written += len(events)
        if self.on_written:
            done = list(zip(events, batch.costs, strict=True))
            step = max(1, self.slice_rows)
            for start in range(0, len(done), step):
                if start and pause is not None:
                    pause()
                self.on_written(done[start : start + step])

    def _pause(self) -> None:
        """Between two slices of a batch: the GIL goes to the event loop if it waits for it."""
        time.sleep(self.gil_pause)

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

    def _spill(self, events: list[UsageEvent]) -> bool:
        if not events:
            return True
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            path = self.spill_dir / f"ledger-spill-{time.time_ns()}.jsonl"
            # Written under another name, then renamed: another worker starting now imports whole files only.
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as f:
                for ev in events:
                    f.write(orjson.dumps(spill_record(ev, self._cost(ev))) + b"\n")
            tmp.replace(path)
            self.spilled += len(events)
            self._report("spilled", len(events))
            log.warning("database unavailable: %d ledger rows spilled to %s", len(events), path)
            return True
        except OSError:
            self.dropped += len(events)
            self._report("dropped", len(events))
            log.exception("could not spill %d ledger rows", len(events))
            return False

    def _report(self, kind: str, n: int) -> None:
        if self.on_lost is not None:
            self.on_lost(kind, n)


def intern_dim(conn: Connection, kind: str, value: str) -> int:
    """The id of (kind, value) in ledger_dims, added if missing; safe against another writer adding it."""
    where = select(schema.dims.c.id).where(schema.dims.c.kind == kind, schema.dims.c.value == value)
    found = conn.execute(where).scalar()
    if found is None:
        add = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
        conn.execute(add(schema.dims).values(kind=kind, value=value).on_conflict_do_nothing())
        found = conn.execute(where).scalar_one()
    return int(found)


def describe_db_error(exc: SQLAlchemyError) -> str:
    """The driver's own first line (e.g. "database or disk is full"): no SQL, no parameters, no URL."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    return f"database write failed: {type(orig).__name__}: {first}" if first else type(orig).__name__
