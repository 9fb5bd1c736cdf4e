"""The stored-responses table on SQLite and PostgreSQL: its named migration, ownership and expiry."""

from __future__ import annotations

import time

import pytest

from ailab.db import make_engine, migrate
from ailab.db.migrations import applied_migrations
from ailab.gateway.responses import store as store_module
from ailab.gateway.responses.store import MIGRATIONS, ResponseStore, Stored


def _stored(rid: str, owner: str = "key:a") -> Stored:
    items = [
        {"type": "message", "id": "msg_1", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]
    return Stored(rid, owner, {"id": rid, "output": [{"type": "message", "id": "msg_2"}]}, items, 1)


@pytest.fixture
def store(database_url: str) -> ResponseStore:
    engine = make_engine(database_url)
    assert migrate(engine, MIGRATIONS) == ["gateway_0001_responses"]
    assert migrate(engine, MIGRATIONS) == []  # applied once
    assert "gateway_0001_responses" in applied_migrations(engine)
    return ResponseStore(engine, ttl_s=3600)


def test_owner_only_and_delete(store: ResponseStore) -> None:
    store.put(_stored("resp_1"))
    got = store.get("resp_1", "key:a")
    assert got is not None and got.input_items[0]["id"] == "msg_1"
    assert [i["id"] for i in got.conversation()] == ["msg_1", "msg_2"]
    assert store.get("resp_1", "key:b") is None
    assert not store.delete("resp_1", "key:b")
    assert store.delete("resp_1", "key:a") and store.get("resp_1", "key:a") is None


def test_expired_responses_are_gone(store: ResponseStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put(_stored("resp_old"))
    later = time.time() + 3601
    monkeypatch.setattr(store_module.time, "time", lambda: later)
    assert store.get("resp_old", "key:a") is None  # invisible at once
    assert not store.delete("resp_old", "key:a")
    assert store.purge() == 1


async def test_saves_write_behind_in_one_batch(store: ResponseStore) -> None:
    import asyncio

    writes: list[int] = []
    write = store._write
    store._write = lambda rows, replace=False: (writes.append(len(rows)), write(rows))[1]  # type: ignore[method-assign]
    await asyncio.gather(*(store.save(_stored(f"resp_{i}")) for i in range(20)))
    assert writes == []  # nobody waited for the database
    found = await store.find("resp_3", "key:a")  # from the buffer
    assert found is not None and found.input_items[0]["id"] == "msg_1"
    assert await store.find("resp_3", "key:b") is None  # ownership holds in the buffer too
    await store.close()
    assert writes == [20]  # one transaction for the batch, on close at the latest
    assert all(store.get(f"resp_{i}", "key:a") is not None for i in range(20))


async def test_delete_reaches_buffer_and_database(store: ResponseStore) -> None:
    await store.save(_stored("resp_buf"))
    assert not await store.remove("resp_buf", "key:b")
    assert await store.remove("resp_buf", "key:a")  # still buffered: never written
    assert await store.find("resp_buf", "key:a") is None
    store.put(_stored("resp_db"))
    assert await store.remove("resp_db", "key:a") and store.get("resp_db", "key:a") is None
    await store.close()
    assert store.get("resp_buf", "key:a") is None


async def test_delete_while_its_batch_is_written(store: ResponseStore) -> None:
    import asyncio
    import threading

    gate, entered = threading.Event(), threading.Event()
    write = store._write

    def slow_write(rows: list, replace: bool = False) -> None:
        entered.set()
        gate.wait(5)
        write(rows)

    store._write = slow_write  # type: ignore[method-assign]
    await store.save(_stored("resp_x"))
    await asyncio.to_thread(entered.wait, 5)  # the batch is being written now
    assert await store.remove("resp_x", "key:a")
    assert await store.find("resp_x", "key:a") is None
    gate.set()
    await store.close()
    assert store.get("resp_x", "key:a") is None  # deleted once its batch was committed


async def test_a_miss_waits_for_another_workers_flush(database_url: str) -> None:
    """Worker B misses what worker A still buffers: B polls the database until A's batch lands."""

    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    a = ResponseStore(engine, ttl_s=3600, flush_interval_s=0.2)
    b = ResponseStore(engine, ttl_s=3600, flush_interval_s=0.02, settle_s=5)
    await a.save(_stored("resp_cross"))
    found = await b.find("resp_cross", "key:a")  # not committed yet when asked
    assert found is not None and found.id == "resp_cross"
    b.settle_s = 0
    assert await b.find("resp_never", "key:a") is None
    await a.close()
    engine.dispose()


def test_response_ids_are_time_ordered_and_opaque() -> None:
    # Time-ordered ids keep the stored responses' primary-key index appending (see request.new_response_id).
    from ailab.gateway.responses.request import new_response_id

    ids = [new_response_id() for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == 200
    assert all(len(i) == len("resp_") + 32 and i.startswith("resp_") for i in ids)
    int(ids[0][5:], 16)  # hex, like every other id the lab makes


def test_an_encoded_response_is_stored_as_given(store: ResponseStore) -> None:
    stored = _stored("resp_enc")
    stored.encoded = b'{"id":"resp_enc","output":[],"note":"\\u00e9"}'  # a stream's final event, already JSON
    store.put(stored)
    got = store.get("resp_enc", "key:a")
    assert got is not None and got.response == {"id": "resp_enc", "output": [], "note": "é"}


def test_a_batch_larger_than_one_statement_is_written_whole(store: ResponseStore) -> None:
    """SQLite writes a batch as multi-row INSERTs of SQLITE_ROWS rows each; every row lands, as given."""
    from ailab.gateway.responses.store import SQLITE_ROWS

    n = SQLITE_ROWS * 2 + 7
    batch = [(_stored(f"resp_{i:04d}", owner=f"key:{i % 3}"), 10**13 + i) for i in range(n)]
    batch[5][0].response["note"] = 'quote " backslash \\ é \u0000 🎉'
    store._write([store._row(stored, expires_ms) for stored, expires_ms in batch])
    for i in (0, 5, SQLITE_ROWS, n - 1):
        got = store.get(f"resp_{i:04d}", f"key:{i % 3}")
        assert got is not None and got.response == batch[i][0].response and got.items == batch[i][0].items
    assert store.get("resp_0001", "key:0") is None  # owned by key:1
