"""The vector-store interface: dense vectors keyed by integer chunk ids, one namespace per collection.

Chunk texts and metadata live in the knowledge catalog (SQLite, with its BM25 index), so a store holds only
ids and vectors: that keeps every backend small and lets `migrate` move a collection without re-embedding.
Filters arrive as an allowed-id set resolved by the catalog, the one filter every backend can apply.
Vectors are L2-normalised; scores are cosine similarities (inner products), higher is better.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class StoreError(RuntimeError):
    """A store refused or failed an operation; the message is safe to show."""


class VectorStore(Protocol):
    kind: str

    def create(self, collection: str, dimension: int) -> None: ...
    def drop(self, collection: str) -> None: ...
    def upsert(self, collection: str, ids: list[int], vectors: np.ndarray) -> None: ...
    def delete(self, collection: str, ids: list[int]) -> None: ...
    def search(
        self, collection: str, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]: ...
    def export(self, collection: str, batch: int = 1024) -> Iterator[tuple[list[int], np.ndarray]]: ...
    def count(self, collection: str) -> int: ...
    def close(self) -> None: ...


StoreFactory = Callable[[Path, dict[str, Any]], VectorStore]


def _embedded(root: Path, opts: dict[str, Any]) -> VectorStore:
    from ailab.knowledge.stores.embedded import EmbeddedStore

    return EmbeddedStore(root / "embedded", opts)


def _qdrant(root: Path, opts: dict[str, Any]) -> VectorStore:
    from ailab.knowledge.stores.qdrant import QdrantStore

    return QdrantStore(
        url=opts.get("url"), path=opts.get("path") or str(root / "qdrant"), api_key=opts.get("api_key")
    )


def _milvus(root: Path, opts: dict[str, Any]) -> VectorStore:
    from ailab.knowledge.stores.milvus import MilvusStore

    return MilvusStore(uri=opts.get("url") or str(root / "milvus.db"), token=opts.get("token"))


STORES: dict[str, StoreFactory] = {"embedded": _embedded, "qdrant": _qdrant, "milvus": _milvus}


def open_store(kind: str, root: Path, opts: dict[str, Any] | None = None) -> VectorStore:
    """`kind` is embedded, qdrant or milvus; `opts` are that store's settings (url, path, api_key …)."""
    try:
        factory = STORES[kind]
    except KeyError:
        raise StoreError(f"unknown store {kind!r}: choose one of {', '.join(sorted(STORES))}") from None
    return factory(root, opts or {})


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (id, score) pairs, best first."""
    if len(scores) == 0 or k <= 0:
        return []
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    best = part[np.argsort(-scores[part], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in best]
