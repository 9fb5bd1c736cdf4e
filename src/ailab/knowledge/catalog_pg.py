"""The knowledge catalog in the lab's PostgreSQL database, so every replica on that database shares the
same collections, documents and sparse index (the vectors are shared by the vector store).

The sparse side is PostgreSQL full-text search: a generated `tsvector` column weighting title (A), heading
path (B) and body (D) like the SQLite catalog's BM25 column weights, a GIN index, and `ts_rank_cd`. A query
is an OR of its terms, each turned into a tsquery by `plainto_tsquery` from a bound parameter: user text
never reaches tsquery syntax. Writes run in transactions; a document's replacement holds a lock on its id
so two replicas ingesting the same file at once end with one copy, not two or none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from ailab.db import Migration
from ailab.knowledge.catalog_base import BM25_WEIGHTS, ChunkIn, ChunkRow, Collection, query_terms
from ailab.knowledge.filters import FILTER_FIELD
from ailab.text import quote_sized

# Held shared by every catalog write transaction and exclusively by a backup while it snapshots the
# vector stores, so no ingest is half-written in what the backup copies ("ailab-kn" as an int8).
WRITE_LOCK = 0x61696C61622D6B6E
MAX_TERMS = 256  # a query's distinct terms that take part (each is one bound parameter)
TS_CONFIG = "english"
# ts_rank_cd weights in the order {D, C, B, A}: body 1, heading 2, title 4 (BM25_WEIGHTS, scaled to ≤ 1).
_TOP = max(BM25_WEIGHTS)
RANK_WEIGHTS = "{%s}" % ",".join(  # noqa: UP031 - a PostgreSQL array literal, not a format string
    str(w / _TOP) for w in (BM25_WEIGHTS[2], BM25_WEIGHTS[2], BM25_WEIGHTS[1], BM25_WEIGHTS[0])
)

DDL = f"""
CREATE TABLE knowledge_collections (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, project_id TEXT, store TEXT NOT NULL,
  embedding_model TEXT NOT NULL, dimension INTEGER NOT NULL, chunk_tokens INTEGER NOT NULL,
  overlap INTEGER NOT NULL, created_ms BIGINT NOT NULL, created_by TEXT NOT NULL, description TEXT
);
CREATE TABLE knowledge_documents (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL REFERENCES knowledge_collections (id) ON DELETE CASCADE,
  source TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL, content_hash TEXT NOT NULL,
  mtime DOUBLE PRECISION, size BIGINT NOT NULL, chunks INTEGER NOT NULL, ingested_ms BIGINT NOT NULL,
  UNIQUE (collection_id, source)
);
CREATE TABLE knowledge_chunks (
  id BIGSERIAL PRIMARY KEY, collection_id TEXT NOT NULL,
  document_id TEXT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
  ord INTEGER NOT NULL, title TEXT NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, meta JSONB NOT NULL,
  tsv TSVECTOR GENERATED ALWAYS AS (
    setweight(to_tsvector('{TS_CONFIG}'::regconfig, title), 'A')
    || setweight(to_tsvector('{TS_CONFIG}'::regconfig, heading), 'B')
    || setweight(to_tsvector('{TS_CONFIG}'::regconfig, text), 'D')
  ) STORED
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id);
CREATE INDEX knowledge_chunks_collection ON knowledge_chunks (collection_id);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING GIN (tsv)
"""


def _create_0001(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return  # an embedded lab keeps its catalog in the data dir's catalog.sqlite
    for statement in DDL.split(";\n"):
        conn.exec_driver_sql(statement)


MIGRATIONS = [Migration("knowledge_0001_catalog", _create_0001)]

_DOC_COLS = "id, source, title, kind, content_hash, mtime, size, chunks, ingested_ms"


def _scrub(value: Any) -> Any:
    """PostgreSQL text and jsonb hold no NUL character; a parser may still produce one."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class PgCatalog:
    """The catalog in PostgreSQL tables `knowledge_collections`, `knowledge_documents`, `knowledge_chunks`
    (created by the migration `knowledge_0001_catalog`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any error."""
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))  # as long as SQLite's busy timeout
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": WRITE_LOCK})
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- collections ------------------------------------------------------------------------------

    def add_collection(self, c: Collection) -> None:
        cols = list(asdict(c))
        sql = (
            f"INSERT INTO knowledge_collections ({', '.join(cols)})"  # noqa: S608 - column names are ours
            f" VALUES ({', '.join(':' + k for k in cols)}) ON CONFLICT DO NOTHING"
        )
        try:
            with self.connect() as conn:
                if conn.execute(text(sql), _scrub(asdict(c))).rowcount == 0:
                    raise KeyError(f"collection {c.name!r} already exists")
        except IntegrityError:
            raise KeyError(f"collection {c.name!r} already exists") from None

    def collections(self) -> list[Collection]:
        with self._read() as conn:
            rows = conn.execute(text("SELECT * FROM knowledge_collections ORDER BY name")).mappings()
            return [Collection(**dict(r)) for r in rows]

    def collection(self, name: str) -> Collection | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    text(
                        "SELECT * FROM knowledge_collections WHERE name = :n OR id = :n"
                        " ORDER BY name = :n DESC"
                    ),
                    {"n": _scrub(name)},
                )
                .mappings()
                .first()
            )
        return None if row is None else Collection(**dict(row))

    def set_store(self, collection_id: str, store: str) -> None:
        with self.connect() as conn:
            conn.execute(
                text("UPDATE knowledge_collections SET store = :s WHERE id = :i"),
                {"s": store, "i": collection_id},
            )

    def drop_collection(self, collection_id: str) -> None:
        with self.connect() as conn:  # documents and chunks go with it (ON DELETE CASCADE)
            conn.execute(text("DELETE FROM knowledge_collections WHERE id = :i"), {"i": collection_id})

    def stats(self, collection_id: str) -> dict[str, int]:
        with self._read() as conn:
            docs = conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(chunks), 0) FROM knowledge_documents"
                    " WHERE collection_id = :c"
                ),
                {"c": collection_id},
            ).one()
        return {"documents": int(docs[0]), "chunks": int(docs[1])}

    # -- documents --------------------------------------------------------------------------------

    def documents(self, collection_id: str, source_prefix: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {_DOC_COLS} FROM knowledge_documents WHERE collection_id = :c"  # noqa: S608
        args: dict[str, Any] = {"c": collection_id}
        if source_prefix:
            sql += " AND left(source, :n) = :p"
            args |= {"n": len(source_prefix), "p": _scrub(source_prefix)}
        with self._read() as conn:
            return [dict(r) for r in conn.execute(text(sql + " ORDER BY source"), args).mappings()]

    def document(self, collection_id: str, document_id: str) -> dict[str, Any] | None:
        sql = f"SELECT {_DOC_COLS} FROM knowledge_documents WHERE collection_id = :c AND id = :i"  # noqa: S608
        with self._read() as conn:
            row = conn.execute(text(sql), {"c": collection_id, "i": _scrub(document_id)}).mappings().first()
        return None if row is None else dict(row)

    def source_of(self, conn: Connection, document_id: str) -> str | None:
        row = conn.execute(
            text("SELECT source FROM knowledge_documents WHERE id = :i"), {"i": _scrub(document_id)}
        ).first()
        return None if row is None else str(row[0])

    def delete_document(self, conn: Connection, document_id: str) -> list[int]:
        """Remove a document and its chunks inside the caller's transaction; returns the chunk ids. Takes
        the document's lock first (held to commit), so a concurrent replacement waits for this one."""
        doc = _scrub(document_id)
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:i, 0))"), {"i": doc})
        ids = [
            int(r[0])
            for r in conn.execute(text("SELECT id FROM knowledge_chunks WHERE document_id = :i"), {"i": doc})
        ]
        conn.execute(text("DELETE FROM knowledge_documents WHERE id = :i"), {"i": doc})
        return ids

    def insert_document(self, conn: Connection, doc: dict[str, Any], chunks: list[ChunkIn]) -> list[int]:
        """Insert a document and its chunks (text, ord, heading text, meta) in the caller's transaction."""
        row = _scrub({**doc, "chunks": len(chunks), "ingested_ms": int(time.time() * 1000)})
        conn.execute(
            text(
                "INSERT INTO knowledge_documents (id, collection_id, source, title, kind, content_hash,"
                " mtime, size, chunks, ingested_ms) VALUES (:id, :collection_id, :source, :title, :kind,"
                " :content_hash, :mtime, :size, :chunks, :ingested_ms)"
            ),
            row,
        )
        if not chunks:
            return []
        ids = [
            int(r[0])
            for r in conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('knowledge_chunks', 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"n": len(chunks)},
            )
        ]
        conn.execute(
            text(
                "INSERT INTO knowledge_chunks"
                " (id, collection_id, document_id, ord, title, heading, text, meta)"
                " VALUES (:id, :c, :d, :ord, :title, :heading, :text, CAST(:meta AS jsonb))"
            ),
            [
                {
                    "id": i,
                    "c": row["collection_id"],
                    "d": row["id"],
                    "ord": ord_,
                    "title": row["title"],
                    "heading": _scrub(heading),
                    "text": _scrub(body),
                    "meta": json.dumps(_scrub(meta)),
                }
                for i, (body, ord_, heading, meta) in zip(ids, chunks, strict=True)
            ],
        )
        return ids

    # -- retrieval --------------------------------------------------------------------------------

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                text("SELECT id, document_id, text, meta FROM knowledge_chunks WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in ids]},
            ).all()
        return {int(r[0]): ChunkRow(int(r[0]), r[1], r[2], dict(r[3])) for r in rows}

    def document_of(self, ids: list[int]) -> dict[int, str]:
        """The document id of each chunk id (ids that no longer exist are left out)."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                text("SELECT id, document_id FROM knowledge_chunks WHERE id = ANY(:ids)"), {"ids": ids}
            ).all()
        return {int(r[0]): str(r[1]) for r in rows}

    def bm25(
        self, collection_id: str, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """The `k` best chunks of a collection for the OR of the query's terms, by `ts_rank_cd`."""
        terms = [_scrub(t) for t in query_terms(query)[:MAX_TERMS]]
        if not terms or k <= 0 or (allowed is not None and not allowed):
            return []
        args: dict[str, Any] = {f"t{i}": t for i, t in enumerate(terms)}
        tsq = " || ".join(f"plainto_tsquery('{TS_CONFIG}', :t{i})" for i in range(len(terms)))
        sql = (
            f"WITH q AS (SELECT ({tsq}) AS q)"  # noqa: S608 - only bound parameters and our constants
            f" SELECT c.id, ts_rank_cd('{RANK_WEIGHTS}'::float4[], c.tsv, q.q) AS score"
            " FROM knowledge_chunks c, q WHERE numnode(q.q) > 0 AND c.collection_id = :c AND c.tsv @@ q.q"
        )
        args |= {"c": collection_id, "k": k}
        if allowed is not None:
            sql += " AND c.id = ANY(:allowed)"
            args["allowed"] = sorted(int(i) for i in allowed)
        with self._read() as conn:
            rows = conn.execute(text(sql + " ORDER BY score DESC, c.id LIMIT :k"), args).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def refresh_index(
        self, collection_id: str, wait: bool = False, on_build: Callable[[], None] | None = None
    ) -> None:
        """Nothing to do: PostgreSQL keeps its text search index (`tsv`) up to date itself."""

    def filter_ids(self, collection_id: str, filters: dict[str, Any]) -> set[int]:
        """Chunk ids matching every filter: `source_prefix`, `document_id`, or a metadata field's value."""
        sql = "SELECT id FROM knowledge_chunks WHERE collection_id = :c"
        args: dict[str, Any] = {"c": collection_id}
        for n, (key, value) in enumerate(filters.items()):
            if key == "source_prefix":
                sql += f" AND left(meta->>'source', :n{n}) = :v{n}"
                args |= {f"n{n}": len(str(value)), f"v{n}": _scrub(str(value))}
            elif key == "document_id":
                sql += f" AND document_id = :v{n}"
                args[f"v{n}"] = _scrub(str(value))
            elif FILTER_FIELD.match(key):
                # jsonb equality keeps the value's type (1 is not "1"), like SQLite's json_extract
                sql += f" AND meta -> :k{n} = CAST(:v{n} AS jsonb)"
                args |= {f"k{n}": key, f"v{n}": json.dumps(_scrub(value))}
            else:
                raise ValueError(f"filters: unknown field {quote_sized(key)}")
        with self._read() as conn:
            return {int(r[0]) for r in conn.execute(text(sql), args)}
