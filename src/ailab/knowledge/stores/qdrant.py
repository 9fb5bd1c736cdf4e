"""Qdrant through qdrant-client: a Qdrant server by URL (compose / Kubernetes), or the client's local mode
(`path=` on disk, `:memory:`) where no server runs. Local mode is Qdrant's own Python implementation: right
for tests and small collections, slow at 100k points (see docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ailab.knowledge.stores.base import StoreError


class QdrantStore:
    kind = "qdrant"

    def __init__(self, url: str | None = None, path: str | None = None, api_key: str | None = None) -> None:
        from qdrant_client import QdrantClient

        if url:
            self.client = QdrantClient(url=url, api_key=api_key)
        elif path == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            self.client = QdrantClient(path=path)

    def create(self, collection: str, dimension: int) -> None:
        from qdrant_client import models

        if self.client.collection_exists(collection):
            info = self.client.get_collection(collection)
            size = getattr(info.config.params.vectors, "size", None)
            if size != dimension:
                raise StoreError(f"qdrant collection {collection!r} exists with dimension {size}")
            return
        self.client.create_collection(
            collection, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )

    def drop(self, collection: str) -> None:
        if self.client.collection_exists(collection):
            self.client.delete_collection(collection)

    def upsert(self, collection: str, ids: list[int], vectors: np.ndarray) -> None:
        from qdrant_client import models

        self._exists(collection)
        points = [
            models.PointStruct(id=i, vector=v.tolist(), payload={}) for i, v in zip(ids, vectors, strict=True)
        ]
        for start in range(0, len(points), 256):
            self.client.upsert(collection, points=points[start : start + 256], wait=True)

    def delete(self, collection: str, ids: list[int]) -> None:
        from qdrant_client import models

        if ids:
            self.client.delete(collection, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def search(
        self, collection: str, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        from qdrant_client import models

        self._exists(collection)
        flt = None
        if allowed is not None:
            if not allowed:
                return []
            flt = models.Filter(must=[models.HasIdCondition(has_id=list(allowed))])
        res = self.client.query_points(
            collection, query=np.asarray(vector).tolist(), limit=k, query_filter=flt, with_payload=False
        )
        return [(int(p.id), float(p.score)) for p in res.points]

    def export(self, collection: str, batch: int = 1024) -> Iterator[tuple[list[int], np.ndarray]]:
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                collection, limit=batch, offset=offset, with_vectors=True, with_payload=False
            )
            if points:
                vecs = np.array([p.vector for p in points], dtype=np.float32)
                yield [int(p.id) for p in points], vecs
            if offset is None:
                return

    def count(self, collection: str) -> int:
        self._exists(collection)
        return int(self.client.count(collection, exact=True).count)

    def close(self) -> None:
        self.client.close()

    def _exists(self, collection: str) -> None:
        if not self.client.collection_exists(collection):
            raise StoreError(f"collection {collection!r} does not exist in qdrant")


def open_qdrant(root: Path, opts: dict[str, Any]) -> QdrantStore:
    """The `qdrant` entry point of `ailab.stores`: a server by `url`, else local mode on disk."""
    return QdrantStore(
        url=opts.get("url"), path=opts.get("path") or str(root / "qdrant"), api_key=opts.get("api_key")
    )
