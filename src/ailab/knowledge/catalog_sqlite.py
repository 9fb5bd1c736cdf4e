"""The knowledge catalog in a SQLite file in the data dir (the embedded default): collections, documents,
chunk texts and metadata, and the BM25 index (FTS5) of the chunks. Vector stores hold only ids and vectors.

A collection of `sparse_min_rows` chunks or more is searched through a numpy BM25 index beside the file
instead, with FTS5's ranking, kept up to date from the catalog (knowledge/sparse_sync.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ailab.knowledge.catalog_base import (
    BM25_WEIGHTS,
    COMMON_MIN_ROWS,
    COMMON_SHARE,
    ChunkIn,
    ChunkRow,
    Collection,
    _or_query,
    query_terms,
)
from ailab.knowledge.filters import FILTER_FIELD
from ailab.knowledge.sparse_sync import CatalogIndexes
from ailab.text import quote_sized

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, project_id TEXT, store TEXT NOT NULL,
  embedding_model TEXT NOT NULL, dimension INTEGER NOT NULL, chunk_tokens INTEGER NOT NULL,
  overlap INTEGER NOT NULL, created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, description TEXT
);
CREATE TABLE IF NOT EXISTS documents (
  id TEXT PRIMARY KEY, collection_id TEXT NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
  kind TEXT NOT NULL, content_hash TEXT NOT NULL, mtime REAL, size INTEGER NOT NULL,
  chunks INTEGER NOT NULL, ingested_ms INTEGER NOT NULL, UNIQUE (collection_id, source)
);
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY AUTOINCREMENT, collection_id TEXT NOT NULL, document_id TEXT NOT NULL,
  ord INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title, heading, text, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS chunk_deletions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, collection_id TEXT NOT NULL, chunk_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_deletions_collection ON chunk_deletions (collection_id, seq);
"""
SPARSE_MIN_ROWS = 20_000
SPARSE_SYNC_ROWS = 2_000  # the most new chunks a search catches up itself (see knowledge/sparse_sync.py)


class SqliteCatalog:
    """The catalog in one SQLite file (WAL): one lab process, or several sharing one data dir."""

    def __init__(
        self, path: Path, sparse_min_rows: int = SPARSE_MIN_ROWS, sparse_sync_rows: int = SPARSE_SYNC_ROWS
    ) -> None:
        self.path = path
        self.indexes = CatalogIndexes(path.parent / "sparse", self._read, sparse_min_rows, sparse_sync_rows)
        self._df_cache: dict[tuple[str, int, int], int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()

    @property
    def sparse_min_rows(self) -> int:
        """Chunks from which a collection is searched through its sparse index (knowledge/sparse_sync)."""
        return self.indexes.min_rows

    @sparse_min_rows.setter
    def sparse_min_rows(self, rows: int) -> None:
        self.indexes.min_rows = rows

    def refresh_index(
        self, collection_id: str, wait: bool = False, on_build: Callable[[], None] | None = None
    ) -> None:
        self.indexes.refresh(collection_id, wait, on_build)

    def connect(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction: commits on success, rolls back on any error. It takes the write lock at
        once (`BEGIN IMMEDIATE`, waiting up to the busy timeout): a deferred transaction that reads first
        could not upgrade to writing once another writer committed, and would fail at once."""
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transaction("BEGIN")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(begin)
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # -- collections ------------------------------------------------------------------------------

    def add_collection(self, c: Collection) -> None:
        with self.connect() as db:
            if db.execute("SELECT 1 FROM collections WHERE name = ?", (c.name,)).fetchone():
                raise KeyError(f"collection {c.name!r} already exists")
            cols = list(asdict(c))
            db.execute(
                f"INSERT INTO collections ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",  # noqa: S608
                [getattr(c, k) for k in cols],
            )

    def collections(self) -> list[Collection]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM collections ORDER BY name").fetchall()
            names = [d[0] for d in db.execute("SELECT * FROM collections LIMIT 0").description]
        return [Collection(**dict(zip(names, r, strict=True))) for r in rows]

    def collection(self, name: str) -> Collection | None:
        return next((c for c in self.collections() if c.name == name or c.id == name), None)

    def set_store(self, collection_id: str, store: str) -> None:
        with self.connect() as db:
            db.execute("UPDATE collections SET store = ? WHERE id = ?", (store, collection_id))

    def drop_collection(self, collection_id: str) -> None:
        with self.connect() as db:
            db.execute(
                "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE collection_id = ?)",
                (collection_id,),
            )
            db.execute("DELETE FROM chunks WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM documents WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))
            db.execute("DELETE FROM chunk_deletions WHERE collection_id = ?", (collection_id,))
        self.indexes.forget(collection_id)

    def stats(self, collection_id: str) -> dict[str, int]:
        with self._read() as db:
            docs = db.execute(
                "SELECT count(*), coalesce(sum(chunks), 0) FROM documents WHERE collection_id = ?",
                (collection_id,),
            ).fetchone()
        return {"documents": int(docs[0]), "chunks": int(docs[1])}

    # -- documents --------------------------------------------------------------------------------

    def documents(self, collection_id: str, source_prefix: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, source, title, kind, content_hash, mtime, size, chunks, ingested_ms FROM documents"
            " WHERE collection_id = ?"
        )
        args: list[Any] = [collection_id]
        if source_prefix:
            sql += " AND substr(source, 1, ?) = ?"
            args += [len(source_prefix), source_prefix]
        with self._read() as db:
            cur = db.execute(sql + " ORDER BY source", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def document(self, collection_id: str, document_id: str) -> dict[str, Any] | None:
        return next((d for d in self.documents(collection_id) if d["id"] == document_id), None)

    def chunk_ids(self, db: sqlite3.Connection, document_id: str) -> list[int]:
        return [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))]

    def source_of(self, db: sqlite3.Connection, document_id: str) -> str | None:
        row = db.execute("SELECT source FROM documents WHERE id = ?", (document_id,)).fetchone()
        return None if row is None else str(row[0])

    def delete_document(self, db: sqlite3.Connection, document_id: str) -> list[int]:
        """Remove a document and its chunks inside the caller's transaction; returns the chunk ids."""
        ids = self.chunk_ids(db, document_id)
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        # The sparse index (a cache of the catalog) learns of deletions from this log.
        db.executemany(
            "INSERT INTO chunk_deletions (collection_id, chunk_id)"
            " SELECT collection_id, ? FROM documents WHERE id = ?",
            [(i, document_id) for i in ids],
        )
        db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
        db.execute("DELETE FROM documents WHERE id = ?", (document_id,))
        return ids

    def insert_document(
        self, db: sqlite3.Connection, doc: dict[str, Any], chunks: list[ChunkIn]
    ) -> list[int]:
        """Insert a document and its chunks (text, ord, heading text, meta) in the caller's transaction."""
        db.execute(
            "INSERT INTO documents (id, collection_id, source, title, kind, content_hash, mtime, size,"
            " chunks, ingested_ms) VALUES (:id, :collection_id, :source, :title, :kind, :content_hash,"
            " :mtime, :size, :chunks, :ingested_ms)",
            {**doc, "chunks": len(chunks), "ingested_ms": int(time.time() * 1000)},
        )
        ids: list[int] = []
        for text, ord_, heading, meta in chunks:
            cur = db.execute(
                "INSERT INTO chunks (collection_id, document_id, ord, text, meta) VALUES (?, ?, ?, ?, ?)",
                (doc["collection_id"], doc["id"], ord_, text, json.dumps(meta)),
            )
            rowid = int(cur.lastrowid or 0)
            db.execute(
                "INSERT INTO chunks_fts (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                (rowid, doc["title"], heading, text),
            )
            ids.append(rowid)
        return ids

    # -- retrieval --------------------------------------------------------------------------------

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, document_id, text, meta FROM chunks WHERE id IN ({', '.join('?' * len(ids))})",  # noqa: S608
                ids,
            ).fetchall()
        return {r[0]: ChunkRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows}

    def document_of(self, ids: list[int]) -> dict[int, str]:
        """The document id of each chunk id (ids that no longer exist are left out)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, document_id FROM chunks WHERE id IN ({', '.join('?' * len(ids))})",  # noqa: S608
                ids,
            ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def bm25(
        self, collection_id: str, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        with self._read() as db:
            index = self.indexes.current(db, collection_id)
            if index is not None:
                phrases = self.indexes.phrases(query_terms(query))
                if phrases is not None:
                    return index.search(phrases, k, allowed, (COMMON_SHARE, COMMON_MIN_ROWS))
            match = _or_query(self._selective(db, query_terms(query)))
            if match is None:
                return []
            w = ", ".join(str(x) for x in BM25_WEIGHTS)
            # The best matches over every collection first (no join per matching row), then this
            # collection's among them; the exact per-collection query only if that leaves too few.
            top = db.execute(
                f"SELECT rowid, -bm25(chunks_fts, {w}) FROM chunks_fts WHERE chunks_fts MATCH ?"  # noqa: S608
                f" ORDER BY bm25(chunks_fts, {w}) LIMIT ?",
                (match, k * 10),
            ).fetchall()
            mine = self._in_collection(db, collection_id, [int(r[0]) for r in top])
            hits = [(int(i), float(sc)) for i, sc in top if i in mine and (allowed is None or i in allowed)]
            if len(hits) < k and len(top) == k * 10:
                rows = db.execute(
                    f"SELECT c.id, -bm25(chunks_fts, {w}) FROM chunks_fts JOIN chunks c"  # noqa: S608
                    " ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ? AND c.collection_id = ?"
                    f" ORDER BY bm25(chunks_fts, {w})",
                    (match, collection_id),
                ).fetchall()
                hits = [(int(i), float(sc)) for i, sc in rows if allowed is None or i in allowed]
        return hits[:k]

    def _selective(self, db: sqlite3.Connection, terms: list[str]) -> list[str]:
        """Drop the terms most chunks contain (see COMMON_SHARE); keep at least the rarest one."""
        if len(terms) < 2:
            return terms
        n = int(db.execute("SELECT max(rowid) FROM chunks_fts").fetchone()[0] or 0)
        if n < COMMON_MIN_ROWS:
            return terms
        df = {t: self._df(db, t, n) for t in terms}
        keep = [t for t in terms if df[t] <= COMMON_SHARE * n]
        return keep or [min(terms, key=lambda t: df[t])]

    def _df(self, db: sqlite3.Connection, term: str, n: int) -> int:
        """How many chunks contain `term`; cached until the index grows by about an eighth."""
        key = (term, n.bit_length(), (n >> max(0, n.bit_length() - 4)))
        if key not in self._df_cache:
            if len(self._df_cache) > 50_000:
                self._df_cache.clear()
            row = db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{term}"',))
            self._df_cache[key] = int(row.fetchone()[0])
        return self._df_cache[key]

    @staticmethod
    def _in_collection(db: sqlite3.Connection, collection_id: str, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT id FROM chunks WHERE collection_id = ? AND id IN ({marks})"  # noqa: S608
        return {int(r[0]) for r in db.execute(sql, [collection_id, *ids])}

    def filter_ids(self, collection_id: str, filters: dict[str, Any]) -> set[int]:
        """Chunk ids matching every filter: `source_prefix`, `document_id`, or a metadata field's value."""
        sql = "SELECT id FROM chunks WHERE collection_id = ?"
        args: list[Any] = [collection_id]
        for key, value in filters.items():
            if key == "source_prefix":
                sql += " AND substr(json_extract(meta, '$.source'), 1, ?) = ?"
                args += [len(str(value)), str(value)]
            elif key == "document_id":
                sql += " AND document_id = ?"
                args.append(value)
            elif FILTER_FIELD.match(key):
                sql += f" AND json_extract(meta, '$.{key}') = ?"
                args.append(value)
            else:
                raise ValueError(f"filters: unknown field {quote_sized(key)}")
        with self._read() as db:
            return {int(r[0]) for r in db.execute(sql, args)}
