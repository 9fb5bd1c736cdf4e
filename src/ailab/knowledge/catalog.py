"""The knowledge catalog: collections, documents, chunk texts and metadata, and the sparse index of the
chunks (vector stores hold only ids and vectors; everything else is here).

Two implementations behind one interface (`KnowledgeCatalog`), chosen when the lab opens its knowledge:
a SQLite file in the data dir (`SqliteCatalog`, the embedded default, FTS5 BM25) or, when the lab's own
database is PostgreSQL, tables in that database (`PgCatalog`, PostgreSQL full-text search), so several
replicas on one database share their collections.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ailab.knowledge.catalog_base import (
    BM25_WEIGHTS,
    STOPWORDS,
    ChunkIn,
    ChunkRow,
    Collection,
    KnowledgeCatalog,
    fts_query,
    query_terms,
)
from ailab.knowledge.catalog_sqlite import SqliteCatalog

if TYPE_CHECKING:
    from sqlalchemy import Engine

Catalog = SqliteCatalog  # the name the embedded catalog has always had
CATALOG_FILE = "catalog.sqlite"


def is_postgres(engine: Engine | None) -> bool:
    return engine is not None and engine.dialect.name == "postgresql"


def open_catalog(root: Path, engine: Engine | None = None) -> KnowledgeCatalog:
    """The lab's catalog: in its PostgreSQL database when it has one, else `<root>/catalog.sqlite`."""
    if engine is not None and is_postgres(engine):
        from ailab.knowledge.catalog_pg import PgCatalog

        return PgCatalog(engine)
    return SqliteCatalog(root / CATALOG_FILE)


__all__ = [
    "BM25_WEIGHTS",
    "CATALOG_FILE",
    "STOPWORDS",
    "Catalog",
    "ChunkIn",
    "ChunkRow",
    "Collection",
    "KnowledgeCatalog",
    "SqliteCatalog",
    "fts_query",
    "is_postgres",
    "open_catalog",
    "query_terms",
]
