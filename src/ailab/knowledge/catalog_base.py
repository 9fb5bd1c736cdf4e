"""What every knowledge catalog shares: its value types, the query terms of a search, and the interface
(`KnowledgeCatalog`) the SQLite and PostgreSQL catalogs both implement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

# BM25 column weights: a query word in the page title or heading path says more than one in the body.
BM25_WEIGHTS = (4.0, 2.0, 1.0)


@dataclass
class Collection:
    id: str
    name: str
    project_id: str | None
    store: str
    embedding_model: str
    dimension: int
    chunk_tokens: int
    overlap: int
    created_ms: int
    created_by: str
    description: str | None = None

    @property
    def namespace(self) -> str:
        """The collection's name inside a vector store (safe for every backend's naming rules)."""
        return f"c_{self.id}"

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChunkRow:
    id: int
    document_id: str
    text: str
    meta: dict[str, Any]


STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
# Terms in more than this share of a large index rank almost nothing (BM25 idf → 0) but make FTS5 score
# most rows: they are left out of the query, which keeps BM25 at 100k chunks within a few milliseconds.
COMMON_SHARE = 0.2
COMMON_MIN_ROWS = 2000


def query_terms(text: str) -> list[str]:
    """Distinct lower-case words of a query, stopwords removed unless nothing else is left."""
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 or w.isdigit()]
    words = list(dict.fromkeys(words))
    return [w for w in words if w not in STOPWORDS] or words


def fts_query(text: str) -> str | None:
    """Free text → an FTS5 OR-query of quoted terms (user text never reaches FTS5 syntax unquoted)."""
    return _or_query(query_terms(text))


def _or_query(terms: list[str]) -> str | None:
    return " OR ".join(f'"{w}"' for w in terms) if terms else None


# A chunk to insert: (text, ord, heading path as text, metadata).
ChunkIn = tuple[str, int, str, dict[str, Any]]


class KnowledgeCatalog(Protocol):
    """Collections, documents, chunk texts and the sparse (BM25-style) index of a lab's knowledge.

    Writes that must land together (a document's replacement) go through `connect()`: a transaction handle
    (`tx`) passed to `delete_document` / `insert_document` / `source_of`, committed when the block ends,
    rolled back if it raises."""

    def connect(self) -> AbstractContextManager[Any]: ...
    def add_collection(self, c: Collection) -> None: ...
    def collections(self) -> list[Collection]: ...
    def collection(self, name: str) -> Collection | None: ...
    def set_store(self, collection_id: str, store: str) -> None: ...
    def drop_collection(self, collection_id: str) -> None: ...
    def stats(self, collection_id: str) -> dict[str, int]: ...
    def documents(self, collection_id: str, source_prefix: str | None = None) -> list[dict[str, Any]]: ...
    def document(self, collection_id: str, document_id: str) -> dict[str, Any] | None: ...
    def source_of(self, tx: Any, document_id: str) -> str | None: ...
    def delete_document(self, tx: Any, document_id: str) -> list[int]: ...
    def insert_document(self, tx: Any, doc: dict[str, Any], chunks: list[ChunkIn]) -> list[int]: ...
    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]: ...
    def document_of(self, ids: list[int]) -> dict[int, str]: ...
    def bm25(
        self, collection_id: str, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]: ...
    def filter_ids(self, collection_id: str, filters: dict[str, Any]) -> set[int]: ...
    def refresh_index(
        self, collection_id: str, wait: bool = False, on_build: Callable[[], None] | None = None
    ) -> None: ...
