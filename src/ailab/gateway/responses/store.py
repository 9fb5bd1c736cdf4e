"""Stored responses (`store: true`, OpenAI's default): the lab's database keeps each response with the items
that led to it, so `previous_response_id` can continue a conversation on any provider, and `retrieve`,
`delete` and `input_items` answer from here.

A response belongs to the principal that created it: another key gets 404, exactly as for an id that never
existed. Rows expire after `ailab.responses_ttl_days`; expired rows are invisible at once and deleted in
passing (at most once a minute, by the writer).

Write-behind: `save` puts the response in a bounded in-memory buffer and returns; a background task writes
the buffer in batches (one transaction per batch, every `flush_interval_s`), so no request waits for the
database. The buffer holds each response as its row, JSON already encoded (see `_row`), and a batch is
inserted by multi-row INSERT statements on SQLite (one step each: see SQLITE_ROWS) or the driver's
`executemany` on PostgreSQL, without SQLAlchemy's compilation or per-row parameter processing. Response
ids the lab makes are time-ordered (`request.new_response_id`), so a batch appends to the primary-key index
instead of touching one random page per row: that halves SQLite's CPU per stored response.

Reads look in the buffer first, then in the database. Another worker process cannot see this one's buffer: a
lookup that misses everywhere polls the database for up to `settle_s` (a few flush intervals) before answering
404, so a response answered by worker A can be continued through worker B at once. `close` writes what is left
(a clean stop loses nothing); a hard crash (SIGKILL, OOM) loses the responses of the last flush interval,
which a follow-up then reports as not found. The ledger rows of those requests are not affected (they have
their own journal).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from ailab.db import Migration, insert_many

log = logging.getLogger("ailab.gateway")
_T = TypeVar("_T")

metadata = MetaData()
# A row of the table, as inserted: id, owner, created_ms, expires_ms, response JSON, items JSON, n_input.
Row = tuple[str, str, int, int, str, str, int]

responses_table = Table(
    "gateway_responses",
    metadata,
    Column("id", String(96), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("response", Text, nullable=False),  # the Response object, JSON
    Column("items", Text, nullable=False),  # the conversation before the output: history, then input
    Column("n_input", Integer, nullable=False),  # how many of `items` this request sent (input_items)
    Index("ix_gateway_responses_expires", "expires_ms"),
)


def _create_0001(conn: Connection) -> None:
    metadata.create_all(conn, tables=[responses_table])


MIGRATIONS = [Migration("gateway_0001_responses", _create_0001)]
PURGE_EVERY_S = 60.0


@dataclass
class Stored:
    id: str
    owner: str
    response: dict[str, Any]
    items: list[dict[str, Any]]
    n_input: int
    encoded: bytes | None = None  # `response` already as JSON (a stream's final event): not encoded again

    @property
    def input_items(self) -> list[dict[str, Any]]:
        return self.items[len(self.items) - self.n_input :] if self.n_input else []

    def conversation(self) -> list[dict[str, Any]]:
        """Everything a follow-up (previous_response_id = this one) continues from: the items and output
        (instructions are not carried over, as OpenAI documents)."""
        return [*self.items, *(self.response.get("output") or ())]


class ResponseStore:
    def __init__(
        self,
        engine: Engine,
        ttl_s: float,
        flush_interval_s: float = 0.05,
        settle_s: float = 0.5,
        max_buffered: int = 10_000,
    ) -> None:
        self.engine = engine
        self.ttl_ms = int(ttl_s * 1000)
        self.flush_interval_s = flush_interval_s
        self.settle_s = settle_s  # how long a miss waits for another worker's flush
        self.max_buffered = max_buffered
        self._lock = threading.Lock()
        self._last_purge = 0.0
        # Not yet committed, as their rows (`_row`): waiting for the next batch, and the batch being written.
        self._pending: dict[str, Row] = {}
        self._flushing: dict[str, Row] = {}
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert, self._row_marks = _insert_sql(engine)
        self._deleted: set[str] = set()  # deleted while their batch was being written: delete once it is
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._flushed: asyncio.Event | None = None  # set whenever a batch is done (or failed)

    # -- write-behind ---------------------------------------------------------------------------------

    async def save(self, stored: Stored) -> None:
        """Buffer `stored` for the next batch; returns at once unless the buffer is full (then it waits
        for one batch, and drops the response with a warning if the database is still not taking them)."""
        if len(self._pending) + len(self._flushing) >= self.max_buffered:
            await self._wait_flush()
            if len(self._pending) + len(self._flushing) >= self.max_buffered:
                log.warning("response buffer full (database not writable): %s not stored", stored.id)
                return
        try:
            row = self._row(stored, int(time.time() * 1000) + self.ttl_ms)
        except TypeError as exc:  # not JSON (a bug upstream of here): that one only is not stored
            log.error("response %s not stored: %s", stored.id, exc)
            return
        self._pending[stored.id] = row
        self._deleted.discard(stored.id)
        if self._writer is None:
            self._flushed = self._flushed or asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                if not self._closing:
                    await asyncio.sleep(self.flush_interval_s)  # gather a batch
                if not await self._flush_batch() and self._closing:
                    break
        finally:
            self._writer = None

    async def _flush_batch(self) -> bool:
        batch, self._pending = self._pending, {}
        self._flushing = batch
        assert self._flushed is not None
        self._flushed.clear()
        try:
            await asyncio.to_thread(self._write, list(batch.values()))
        except SQLAlchemyError as exc:  # keep them for the next batch (newer saves of the same id win)
            log.warning("could not store %d responses: %s (retrying)", len(batch), type(exc).__name__)
            self._pending = {**batch, **self._pending}
            if not self._closing:
                await asyncio.sleep(self.flush_interval_s)
            return False
        else:
            gone = [rid for rid in batch if rid in self._deleted and rid not in self._pending]
            if gone:
                await asyncio.to_thread(self._delete_ids, gone)
            self._deleted.difference_update(batch)
            return True
        finally:
            self._flushing = {}
            self._flushed.set()

    async def _wait_flush(self) -> None:
        if self._writer is not None and self._flushed is not None:
            self._flushed.clear()  # the end of the batch being written, or else of the next one
            await self._flushed.wait()

    async def close(self) -> None:
        """Write everything still buffered, at once (on a clean stop)."""
        self._closing = True
        if self._writer is not None:
            await self._writer
        if self._pending:
            log.error("%d stored responses lost at shutdown (database not writable)", len(self._pending))

    def _buffered(self, response_id: str, owner: str) -> Stored | None:
        row = self._pending.get(response_id) or self._flushing.get(response_id)
        if row is None or response_id in self._deleted:
            return None
        if row[1] != owner or row[3] <= int(time.time() * 1000):
            return None
        return _stored(row)

    async def find(self, response_id: str, owner: str) -> Stored | None:
        """The response, from this worker's buffer or the database (polled up to `settle_s` on a miss, for
        another worker's buffer to be flushed)."""
        if response_id in self._pending or response_id in self._flushing:
            return self._buffered(response_id, owner)
        if response_id in self._deleted:
            return None
        found = await self._settled(lambda: self.get(response_id, owner))
        return found if response_id not in self._deleted else None

    async def remove(self, response_id: str, owner: str) -> bool:
        if self._buffered(response_id, owner) is not None:
            if response_id in self._pending:
                del self._pending[response_id]
            else:  # in the batch being written: delete it when that is done
                self._deleted.add(response_id)
            return True
        if response_id in self._pending or response_id in self._flushing:
            return False  # someone else's, or expired
        return await self._settled(lambda: self.delete(response_id, owner) or None) is not None

    async def _settled(self, look: Callable[[], _T | None]) -> _T | None:
        deadline = time.monotonic() + self.settle_s
        while True:
            found = await asyncio.to_thread(look)
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(self.flush_interval_s)

    def put(self, stored: Stored) -> None:
        self._write([self._row(stored, int(time.time() * 1000) + self.ttl_ms)], replace=True)

    def _row(self, stored: Stored, expires_ms: int) -> Row:
        """The INSERT's parameters, made when a response is saved. The buffer holds these, strings and
        numbers: the cyclic GC stops tracking such tuples, where a buffered response's dicts would be
        promoted through every generation while they wait (~25 containers a response, thousands a batch,
        which made full collections frequent: more CPU than encoding the JSON here costs)."""
        return (
            stored.id,
            stored.owner,
            expires_ms - self.ttl_ms,
            expires_ms,
            (stored.encoded or orjson.dumps(stored.response)).decode(),
            orjson.dumps(stored.items).decode(),
            stored.n_input,
        )

    def _delete_ids(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(responses_table).where(responses_table.c.id.in_(ids)))

    def _write(self, rows: list[Row], replace: bool = False) -> None:
        """Insert a batch in one transaction. Ids are fresh and a failed batch was rolled back, so a
        batch only inserts; `replace` (an explicit `put`) deletes an older row of the same id first."""
        with self.engine.begin() as conn:
            if replace:
                ids = [row[0] for row in rows]
                conn.execute(delete(responses_table).where(responses_table.c.id.in_(ids)))
            if self._sqlite:  # multi-row statements (ailab.db.bulk)
                insert_many(conn, f"{self._insert} VALUES ", self._row_marks, rows, SQLITE_ROWS)
            else:
                conn.exec_driver_sql(f"{self._insert} VALUES {self._row_marks}", rows)  # executemany
        try:  # after the commit: a failing purge must not make a committed batch look failed
            self._maybe_purge()
        except SQLAlchemyError as exc:
            log.warning("could not purge expired responses: %s", type(exc).__name__)

    def get(self, response_id: str, owner: str) -> Stored | None:
        t = responses_table
        now = int(time.time() * 1000)
        query = select(t.c.response, t.c["items"], t.c.n_input).where(
            t.c.id == response_id, t.c.owner == owner, t.c.expires_ms > now
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Stored(response_id, owner, orjson.loads(row[0]), orjson.loads(row[1]), int(row[2]))

    def delete(self, response_id: str, owner: str) -> bool:
        t = responses_table
        now = int(time.time() * 1000)
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(t).where(t.c.id == response_id, t.c.owner == owner, t.c.expires_ms > now)
            ).rowcount
        return bool(gone)

    def purge(self) -> int:
        now = int(time.time() * 1000)
        with self.engine.begin() as conn:
            return int(
                conn.execute(delete(responses_table).where(responses_table.c.expires_ms <= now)).rowcount
            )

    def _maybe_purge(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_purge < PURGE_EVERY_S:
                return
            self._last_purge = time.monotonic()
        self.purge()


def _stored(row: Row) -> Stored:
    """A buffered row as the response it holds."""
    return Stored(row[0], row[1], orjson.loads(row[4]), orjson.loads(row[5]), row[6])


# Rows a SQLite INSERT statement takes (ailab.db.bulk): 700 parameters, within every SQLite's limit.
SQLITE_ROWS = 100


def _insert_sql(engine: Engine) -> tuple[str, str]:
    """The batch INSERT without its VALUES, and one row's placeholders in the driver's own style (SQLite
    `?`, psycopg `%s`)."""
    cols = [c.name for c in responses_table.columns]
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(engine.dialect.paramstyle)
    if mark is None:  # numeric/named styles: no driver the lab ships uses them
        raise ValueError(f"unsupported DBAPI paramstyle {engine.dialect.paramstyle!r}")
    # The column named "items" is quoted by the dialect's own rules, as SQLAlchemy would.
    prep = engine.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in cols)
    marks = "(" + ", ".join([mark] * len(cols)) + ")"
    return f"INSERT INTO {prep.quote(responses_table.name)} ({names})", marks
