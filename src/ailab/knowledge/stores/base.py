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

from ailab import plugins


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


def open_store(kind: str, root: Path, opts: dict[str, Any] | None = None) -> VectorStore:
    """`kind` names an `ailab.stores` plugin (built-in: embedded, qdrant, milvus); `opts` are that store's
    settings (url, path, api_key …); `root` is the knowledge data directory it may keep files under."""
    try:
        plugin = plugins.get(plugins.STORES, kind)
    except KeyError:
        raise StoreError(f"unknown store {kind!r}: choose one of {', '.join(store_names())}") from None
    try:
        factory: StoreFactory = plugin.load()
    except Exception as exc:  # a broken plugin is named, not a 500 with a trace
        raise StoreError(f"store plugin {plugin} failed to load: {type(exc).__name__}: {exc}") from exc
    return factory(root, opts or {})


def store_names() -> list[str]:
    """The stores `knowledge.store` may name: every `ailab.stores` entry point."""
    return sorted(plugins.names(plugins.STORES))


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (id, score) pairs, best first."""
    if len(scores) == 0 or k <= 0:
        return []
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    best = part[np.argsort(-scores[part], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in best]
