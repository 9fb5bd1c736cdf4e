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


async def test_concurrent_saves_share_transactions(store: ResponseStore) -> None:
    import asyncio

    await asyncio.gather(*(store.save(_stored(f"resp_{i}")) for i in range(20)))
    assert all(store.get(f"resp_{i}", "key:a") is not None for i in range(20))
