"""The audit log: append-only and hash-chained, so editing or deleting a row is detectable.

Each row's hash is sha256(prev_hash ‖ canonical JSON of its fields). Appends take the chain head by
compare-and-set in the same transaction, which keeps the chain linear across processes.
Secrets never go into `detail` (names and metadata only).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from ailab.access.schema import GENESIS, audit_head, audit_log

MAX_CAS_RETRIES = 50


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts_ms: int
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    rows: int
    broken_id: int | None = None
    reason: str = ""


def row_hash(prev: str, ts_ms: int, actor: str, action: str, target: str | None, detail: str) -> str:
    payload = orjson.dumps([prev, ts_ms, actor, action, target, detail])
    return hashlib.sha256(payload).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, actor: str, action: str, target: str | None = None, **detail: Any) -> None:
        text = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        for _ in range(MAX_CAS_RETRIES):
            with self.engine.begin() as conn:
                if self._append(conn, actor, action, target, text):
                    return
        raise RuntimeError("audit log is contended; append failed")

    @staticmethod
    def _append(conn: Connection, actor: str, action: str, target: str | None, detail: str) -> bool:
        prev, count = conn.execute(select(audit_head.c.last_hash, audit_head.c.count)).one()
        ts = int(time.time() * 1000)
        digest = row_hash(prev, ts, actor, action, target, detail)
        moved = conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1, audit_head.c.last_hash == prev)
            .values(last_hash=digest, count=count + 1)
        )
        if moved.rowcount != 1:
            conn.rollback()
            return False
        conn.execute(
            insert(audit_log).values(
                ts_ms=ts,
                actor=actor,
                action=action,
                target=target,
                detail=detail,
                prev_hash=prev,
                hash=digest,
            )
        )
        return True

    def entries(
        self, limit: int = 100, actor: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if actor:
            stmt = stmt.where(audit_log.c.actor == actor)
        if action:
            stmt = stmt.where(audit_log.c.action == action)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            AuditEntry(r["id"], r["ts_ms"], r["actor"], r["action"], r["target"], orjson.loads(r["detail"]))
            for r in rows
        ]

    def verify(self) -> ChainCheck:
        """Walk the chain; the first row that does not follow from its predecessor is named."""
        prev = GENESIS
        n = 0
        with self.engine.connect() as conn:
            head, count = conn.execute(select(audit_head.c.last_hash, audit_head.c.count)).one()
            for r in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings():
                n += 1
                if r["prev_hash"] != prev:
                    return ChainCheck(
                        False, n, r["id"], "does not link to the previous row (a row was removed?)"
                    )
                expected = row_hash(prev, r["ts_ms"], r["actor"], r["action"], r["target"], r["detail"])
                if r["hash"] != expected:
                    return ChainCheck(
                        False, n, r["id"], "content does not match its hash (the row was edited)"
                    )
                prev = r["hash"]
        if prev != head or n != count:
            return ChainCheck(False, n, None, "the newest rows were removed (chain head does not match)")
        return ChainCheck(True, n)
