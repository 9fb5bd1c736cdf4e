"""Knowledge in a backup: the catalog, every vector store, the uploaded originals.

Consistency: an ingest writes its vectors inside the catalog's write transaction and commits after, so
holding the catalog's write lock (`BEGIN IMMEDIATE`) while the catalog and the local stores are copied
means no ingest is half-written in the copy: every committed chunk has its vectors. Writers wait on the
lock (their busy timeout is 30 s) and go on when it is released. The embedded store's own per-collection
file lock is taken too, for writers that do not go through the catalog. A Qdrant server's collections are
snapshotted through its API under the same lock and downloaded after it is released.

When the lab's database is PostgreSQL the catalog lives there (replicas share it) and the database dump
carries it; there is no catalog file. The stores are then copied while the catalog's PostgreSQL write
lock (an advisory lock every catalog write transaction holds shared) is held exclusively, and the Qdrant
collections to snapshot are read from the catalog's tables.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text

from ailab.config import LoadedConfig
from ailab.ops.qdrant_snapshots import QdrantSnapshots
from ailab.ops.staging import Staging

CATALOG = "data/knowledge/catalog.sqlite"
QDRANT_LOCAL = "stores/qdrant-local"
MILVUS_LITE = "stores/milvus-lite"
SNAPSHOTS = "qdrant-snapshots"


@dataclass(frozen=True)
class StoreLocations:
    root: Path  # <data>/knowledge
    qdrant_local: Path | None  # qdrant-client local mode folder
    qdrant_url: str | None
    qdrant_api_key: str | None
    milvus_lite: Path | None  # Milvus Lite file or folder
    milvus_url: str | None  # a Milvus server: not backed up here

    @classmethod
    def of(cls, loaded: LoadedConfig) -> StoreLocations:
        root = loaded.data_dir / "knowledge"
        stores = loaded.config.knowledge.stores
        q: dict[str, Any] = stores.get("qdrant") or {}
        m: dict[str, Any] = stores.get("milvus") or {}
        q_path = q.get("path")
        local = None if q.get("url") or q_path == ":memory:" else Path(q_path) if q_path else root / "qdrant"
        m_url = m.get("url")
        m_server = bool(m_url) and "://" in str(m_url)
        return cls(
            root=root,
            qdrant_local=local,
            qdrant_url=q.get("url"),
            qdrant_api_key=q.get("api_key"),
            milvus_lite=None if m_server else Path(m_url) if m_url else root / "milvus.db",
            milvus_url=str(m_url) if m_server else None,
        )


@contextmanager
def catalog_write_lock(catalog: Path) -> Iterator[sqlite3.Connection | None]:
    """Hold the catalog's write lock (no ingest can commit or be half-written meanwhile)."""
    if not catalog.is_file():
        yield None
        return
    db = sqlite3.connect(catalog, timeout=60, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


@contextmanager
def _flocked(lock: Path) -> Iterator[None]:
    with open(lock, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def pg_catalog_write_lock(loaded: LoadedConfig) -> Iterator[Connection | None]:
    """When the catalog is in the lab's PostgreSQL database: hold its write lock exclusively."""
    from ailab.db import make_engine
    from ailab.knowledge import WRITE_LOCK
    from ailab.ops.database import is_sqlite, lab_database_url

    url = lab_database_url(loaded)
    if is_sqlite(url):
        yield None
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("knowledge_collections"):
                yield None  # knowledge never used on this database
                return
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": WRITE_LOCK})
            try:
                yield conn
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": WRITE_LOCK})
    finally:
        engine.dispose()


def _qdrant_namespaces(db: sqlite3.Connection | None, pg: Connection | None) -> list[str]:
    ids: list[str] = []
    if db is not None:
        ids += [r[0] for r in db.execute("SELECT id FROM collections WHERE store = 'qdrant' ORDER BY id")]
    if pg is not None:
        sql = "SELECT id FROM knowledge_collections WHERE store = 'qdrant' ORDER BY id"
        ids += [str(r[0]) for r in pg.execute(text(sql))]
    return [f"c_{i}" for i in dict.fromkeys(ids)]


def backup_knowledge(loaded: LoadedConfig, st: Staging) -> None:
    loc = StoreLocations.of(loaded)
    snapshots: list[tuple[str, str]] = []
    client = QdrantSnapshots(loc.qdrant_url, loc.qdrant_api_key) if loc.qdrant_url else None
    catalog = loc.root / "catalog.sqlite"
    with catalog_write_lock(catalog) as db, pg_catalog_write_lock(loaded) as pg:
        if db is not None:
            st.progress("knowledge (catalog locked for a consistent copy)")
            st.add_sqlite(CATALOG, catalog, "catalog")
        elif pg is not None:
            st.progress("knowledge (catalog in the database dump; its writes paused for the stores' copy)")
        _embedded(loc.root / "embedded", st)
        if loc.qdrant_local is not None and loc.qdrant_local.exists():
            _local_tree(QDRANT_LOCAL, loc.qdrant_local, "qdrant-local", st)
        if loc.milvus_lite is not None and loc.milvus_lite.exists():
            _local_tree(MILVUS_LITE, loc.milvus_lite, "milvus-lite", st)
        if client is not None:
            snapshots = [(ns, client.create(ns)) for ns in _qdrant_namespaces(db, pg)]
    if loc.milvus_url:
        st.note(
            f"knowledge.stores.milvus is a Milvus server ({loc.milvus_url}): back it up with Milvus tools"
        )
    if client is not None:
        _download(client, snapshots, st)
    uploads = loc.root / "uploads"
    if uploads.is_dir():
        st.add_tree("data/knowledge/uploads", uploads, "upload")
    if (loc.root / "evals").is_dir():  # kept retrieval evaluations (`ailab knowledge eval`)
        st.add_tree("data/knowledge/evals", loc.root / "evals", "file")


def _embedded(root: Path, st: Staging) -> None:
    if not root.is_dir():
        return
    for coll in sorted(p for p in root.iterdir() if p.is_dir()):
        with _flocked(coll / "lock"):
            index = sorted(p.name for p in coll.glob("ann-*.hnsw"))  # the ANN index (rebuilt if absent)
            for name in ("meta.json", "ids.i64", "vectors.f32", *index):
                if (coll / name).is_file():
                    st.add_file(f"data/knowledge/embedded/{coll.name}/{name}", coll / name, "embedded")


def _local_tree(prefix: str, path: Path, kind: str, st: Staging) -> None:
    if path.is_file():
        st.add_file(prefix, path, kind)
    else:
        st.add_tree(prefix, path, kind)


def _download(client: QdrantSnapshots, snapshots: list[tuple[str, str]], st: Staging) -> None:
    for ns, name in snapshots:
        arc = f"{SNAPSHOTS}/{ns}.snapshot"
        client.download(ns, name, st.path(arc))
        client.delete(ns, name)
        st.commit(arc, "qdrant-snapshot")


def restore_qdrant_snapshots(loaded: LoadedConfig, staged: list[tuple[str, Path]]) -> list[str]:
    """Upload each (namespace, file) to the target's Qdrant server; returns the namespaces done."""
    loc = StoreLocations.of(loaded)
    if not staged:
        return []
    assert loc.qdrant_url is not None
    client = QdrantSnapshots(loc.qdrant_url, loc.qdrant_api_key)
    for ns, path in staged:
        client.upload(ns, path)
    return [ns for ns, _ in staged]
