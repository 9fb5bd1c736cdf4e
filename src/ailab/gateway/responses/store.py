"""Stored responses (`store: true`, OpenAI's default): the lab's database keeps each response with the items
that led to it, so `previous_response_id` can continue a conversation on any provider, and `retrieve`,
`delete` and `input_items` answer from here.

A response belongs to the principal that created it: another key gets 404, exactly as for an id that never
existed. Rows expire after `ailab.responses_ttl_days`; expired rows are invisible at once and deleted in
passing (at most once a minute, by the writer).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

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
    insert,
    select,
)

from ailab.db import Migration

metadata = MetaData()

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

    @property
    def input_items(self) -> list[dict[str, Any]]:
        return self.items[len(self.items) - self.n_input :] if self.n_input else []

    def conversation(self) -> list[dict[str, Any]]:
        """Everything a follow-up (previous_response_id = this one) continues from: the items and output
        (instructions are not carried over, as OpenAI documents)."""
        return [*self.items, *(self.response.get("output") or ())]


class ResponseStore:
    def __init__(self, engine: Engine, ttl_s: float) -> None:
        self.engine = engine
        self.ttl_ms = int(ttl_s * 1000)
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def save(self, stored: Stored) -> None:
        """Store and wait until it is committed. Concurrent saves share one transaction (group commit):
        under load the database sees one write per batch, not one per response."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((self._row(stored), done))
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._write, [row for row, _ in batch])
                except Exception as exc:  # each waiting request gets the failure; none is lost silently
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None

    def put(self, stored: Stored) -> None:
        self._write([self._row(stored)])

    def _row(self, stored: Stored) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {
            "id": stored.id,
            "owner": stored.owner,
            "created_ms": now,
            "expires_ms": now + self.ttl_ms,
            "response": orjson.dumps(stored.response).decode(),
            "items": orjson.dumps(stored.items).decode(),
            "n_input": stored.n_input,
        }

    def _write(self, rows: list[dict[str, Any]]) -> None:
        ids = [row["id"] for row in rows]
        with self.engine.begin() as conn:
            conn.execute(delete(responses_table).where(responses_table.c.id.in_(ids)))
            conn.execute(insert(responses_table), rows)
        self._maybe_purge()

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
