"""The `local` backend: AES-256-GCM ciphertexts in the lab's own database (SQLite or PostgreSQL).

Each write uses a fresh 12-byte nonce, and the secret's name is the associated data, so a ciphertext
copied onto another name's row fails to decrypt instead of leaking under the wrong name. Only the current
version is kept; `version` counts writes so a rotation is visible without decrypting anything.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ailab.db import Migration
from ailab.secrets.base import Auditor, SecretError, SecretMeta, StoreBase
from ailab.secrets.keyfile import load_key

NONCE_BYTES = 12

metadata = MetaData()

secrets_table = Table(
    "secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("nonce", LargeBinary(NONCE_BYTES), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)


def _create_0001(conn: Connection) -> None:
    metadata.create_all(conn, tables=[secrets_table])


MIGRATIONS = [Migration("secrets_0001_local_store", _create_0001)]


def _now_ms() -> int:
    return int(time.time() * 1000)


class LocalStore(StoreBase):
    backend = "local"

    def __init__(
        self,
        engine: Engine,
        key_file: str | None = None,
        data_dir: Path | None = None,
        audit: Auditor | None = None,
        actor: str = "system",
    ) -> None:
        super().__init__(audit, actor)
        self.engine = engine
        self._key_file = key_file
        self._data_dir = data_dir
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    def _cipher(self, *, create: bool) -> AESGCM | None:
        # Loaded lazily: a lab that never stores a secret never creates a key file.
        with self._lock:
            if self._aead is None:
                key = load_key(self._key_file, self._data_dir, create=create)
                if key is not None:
                    self._aead = AESGCM(key)
            return self._aead

    def _read(self, name: str) -> tuple[str, int] | None:
        t = secrets_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.version, t.c.nonce, t.c.ciphertext).where(t.c.name == name)).first()
        if row is None:
            return None
        aead = self._cipher(create=False)
        if aead is None:
            raise SecretError(
                f"cannot decrypt secret {name}: no key (AILAB_SECRET_KEY is unset and the key file "
                "does not exist; was it moved?)"
            )
        try:
            plain = aead.decrypt(bytes(row.nonce), bytes(row.ciphertext), name.encode())
        except InvalidTag:
            raise SecretError(f"cannot decrypt secret {name}: wrong AILAB_SECRET_KEY / key file?") from None
        return plain.decode("utf-8"), int(row.version)

    def _write(self, name: str, value: str) -> int:
        aead = self._cipher(create=True)
        assert aead is not None  # create=True always yields a key or raises
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, value.encode("utf-8"), name.encode())
        t = secrets_table
        values = {"nonce": nonce, "ciphertext": sealed, "updated_ms": _now_ms()}
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    # The UPDATE locks the row, so the version read back is the one this write made.
                    moved = conn.execute(
                        update(t).where(t.c.name == name).values(version=t.c.version + 1, **values)
                    )
                    if moved.rowcount == 0:
                        conn.execute(insert(t).values(name=name, version=1, **values))
                        return 1
                    return int(conn.execute(select(t.c.version).where(t.c.name == name)).scalar_one())
            except IntegrityError:
                continue  # another writer created the row first; update it instead
        raise SecretError(f"cannot store secret {name}: the row is contended by concurrent writers")

    def _remove(self, name: str) -> int | None:
        t = secrets_table
        with self.engine.begin() as conn:
            current = conn.execute(select(t.c.version).where(t.c.name == name)).scalar()
            if current is None:
                return None
            conn.execute(delete(t).where(t.c.name == name))
        return int(current)

    def _version(self, name: str) -> int | None:
        t = secrets_table
        with self.engine.connect() as conn:
            v = conn.execute(select(t.c.version).where(t.c.name == name)).scalar()
        return None if v is None else int(v)

    def _list(self) -> list[SecretMeta]:
        t = secrets_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.name, t.c.version, t.c.updated_ms).order_by(t.c.name)).all()
        return [SecretMeta(r.name, int(r.version), int(r.updated_ms), self.backend) for r in rows]
