"""The audit log: append-only and chained under a key the database does not hold, so editing, deleting or
truncating rows is detectable even by someone who can write the database (see docs/security.md).

Each row's hash is HMAC-SHA256(mac key, prev_hash ‖ canonical JSON of its fields), the mac key derived from
the lab's secret key (`ailab.access.audit_seal`). Chains written before that (plain SHA-256) are re-chained
under the key once, at first use, if they still verify. Appends take the chain head by compare-and-set in the
same transaction, which keeps the chain linear across processes; the newest row is also recorded in a MAC'd
checkpoint file outside the database. Secrets never go into `detail` (names and metadata only).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from ailab.access.audit_seal import CHECKPOINT_FILE, Checkpoint, CheckpointFile, derive_mac_key
from ailab.access.schema import GENESIS, audit_head, audit_log

if TYPE_CHECKING:
    from ailab.config import LoadedConfig

log = logging.getLogger("ailab.audit")

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
    keyed: bool = False  # the chain is MAC'd under the lab's key (not only hashed)
    checkpoint: bool = False  # a checkpoint outside the database was checked


def row_hash(
    prev: str, ts_ms: int, actor: str, action: str, target: str | None, detail: str, key: bytes | None = None
) -> str:
    """HMAC-SHA256 under `key`; plain SHA-256 (chains from before the key, access_0003) when key is None."""
    payload = orjson.dumps([prev, ts_ms, actor, action, target, detail])
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _write_lock(conn: Connection) -> None:
    """SQLite: take the write lock at once (pysqlite would begin the transaction only at its first write,
    leaving the reads before it each on its own); PostgreSQL locks the head row (`FOR UPDATE`) instead."""
    if conn.dialect.name != "sqlite":
        return
    raw: Any = conn.connection.driver_connection
    if not raw.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class AuditLog:
    def __init__(
        self,
        engine: Engine,
        *,
        key_file: str | None = None,
        checkpoint: Path | None = None,
        key: bytes | None = None,
    ) -> None:
        """`key_file`: the lab's secret key file (secrets.key_file; AILAB_SECRET_KEY wins, as for the secret
        store); `checkpoint`: the checkpoint file (None: none kept); `key`: a mac key given directly."""
        self.engine = engine
        self.key_file = key_file
        self.checkpoint = CheckpointFile(checkpoint) if checkpoint is not None else None
        self._key = key
        self._keyed = False

    @classmethod
    def of(cls, engine: Engine, loaded: LoadedConfig) -> AuditLog:
        """The lab's audit log: its secret key, its checkpoint in the data dir."""
        return cls(
            engine, key_file=loaded.config.secrets.key_file, checkpoint=loaded.data_dir / CHECKPOINT_FILE
        )

    def mac_key(self) -> bytes:
        if self._key is None:
            from ailab.secrets import load_key

            secret = load_key(self.key_file, None, create=True)
            assert secret is not None  # create=True
            self._key = derive_mac_key(secret)
        return self._key

    def record(self, actor: str, action: str, target: str | None = None, **detail: Any) -> None:
        text = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        key = self.mac_key() if self._ensure_keyed() else None
        for _ in range(MAX_CAS_RETRIES):
            with self.engine.begin() as conn:
                appended = self._append(conn, key, actor, action, target, text)
            if appended is not None:
                if self.checkpoint is not None and key is not None:
                    self.checkpoint.advance(key, appended)
                return
        raise RuntimeError("audit log is contended; append failed")

    @staticmethod
    def _append(
        conn: Connection, key: bytes | None, actor: str, action: str, target: str | None, detail: str
    ) -> Checkpoint | None:
        prev, count = conn.execute(select(audit_head.c.last_hash, audit_head.c.count)).one()
        ts = int(time.time() * 1000)
        digest = row_hash(prev, ts, actor, action, target, detail, key)
        moved = conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1, audit_head.c.last_hash == prev)
            .values(last_hash=digest, count=count + 1)
        )
        if moved.rowcount != 1:
            conn.rollback()
            return None
        row = conn.execute(
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
        row_id = row.inserted_primary_key
        assert row_id is not None
        return Checkpoint(int(row_id[0]), count + 1, digest)

    def _ensure_keyed(self) -> bool:
        """True once the chain is MAC'd; re-chains a legacy (plain SHA-256) chain that still verifies."""
        if self._keyed:
            return True
        for _ in range(MAX_CAS_RETRIES):
            with self.engine.begin() as conn:
                # One state for the head and the walk: another writer keying or appending in between made
                # a keyed chain look unverifiable, and this writer then appended an unkeyed row to it.
                _write_lock(conn)
                head, keyed = conn.execute(
                    select(audit_head.c.last_hash, audit_head.c.keyed).with_for_update()
                ).one()
                if keyed:
                    self._keyed = True
                    return True
                if self.checkpoint is not None and self.checkpoint.exists():
                    return False  # a keyed chain was reset to a plain one: verify() reports it
                if not self._walk(conn, None, None).ok:
                    log.warning("the audit chain does not verify: left as it is (run `ailab audit --verify`)")
                    return False
                if self._rekey(conn, head):
                    self._keyed = True
                    return True
                conn.rollback()
        raise RuntimeError("audit log is contended; keying the chain failed")

    def _rekey(self, conn: Connection, head: str) -> bool:
        key = self.mac_key()
        prev = GENESIS
        for r in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings().all():
            digest = row_hash(prev, r["ts_ms"], r["actor"], r["action"], r["target"], r["detail"], key)
            conn.execute(
                update(audit_log).where(audit_log.c.id == r["id"]).values(prev_hash=prev, hash=digest)
            )
            prev = digest
        moved = conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1, audit_head.c.last_hash == head)
            .values(last_hash=prev, keyed=True)
        )
        return moved.rowcount == 1

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
        keyed = self._ensure_keyed()
        key = self.mac_key() if keyed else None
        cp: Checkpoint | None = None
        if self.checkpoint is not None:
            try:
                cp = self.checkpoint.read(self.mac_key())
            except ValueError as exc:
                return ChainCheck(False, 0, None, str(exc), keyed)
            if cp is not None and not keyed:
                reason = "the chain is not keyed although a checkpoint exists (it was reset or rewritten)"
                return ChainCheck(False, 0, None, reason, keyed)
        with self.engine.connect() as conn:
            check = self._walk(conn, key, cp)
        return ChainCheck(check.ok, check.rows, check.broken_id, check.reason, keyed, cp is not None)

    @staticmethod
    def _walk(conn: Connection, key: bytes | None, cp: Checkpoint | None) -> ChainCheck:
        prev = GENESIS
        n = 0
        head, count = conn.execute(select(audit_head.c.last_hash, audit_head.c.count)).one()
        for r in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings():
            n += 1
            if r["prev_hash"] != prev:
                return ChainCheck(False, n, r["id"], "does not link to the previous row (a row was removed?)")
            expected = row_hash(prev, r["ts_ms"], r["actor"], r["action"], r["target"], r["detail"], key)
            if not hmac.compare_digest(r["hash"], expected):
                return ChainCheck(False, n, r["id"], "content does not match its hash (the row was edited)")
            if cp is not None and n == cp.count and (r["id"] != cp.row_id or r["hash"] != cp.hash):
                return ChainCheck(False, n, r["id"], "differs from the checkpoint (the chain was rewritten)")
            prev = r["hash"]
        if prev != head or n != count:
            return ChainCheck(False, n, None, "the newest rows were removed (chain head does not match)")
        if cp is not None and n < cp.count:
            reason = f"the chain has {n} rows but its checkpoint says {cp.count}: newest rows were removed"
            return ChainCheck(False, n, None, reason)
        return ChainCheck(True, n)
