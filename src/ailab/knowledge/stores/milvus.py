"""Milvus through pymilvus: Milvus Lite (an embedded engine in a local `.db` file) or a Milvus server by
URL. Inner product over normalised vectors (= cosine); ids are the catalog's int64 chunk ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ailab.knowledge.stores.base import StoreError


class MilvusStore:
    kind = "milvus"

    def __init__(self, uri: str, token: str | None = None) -> None:
        from pymilvus import MilvusClient

        self.client = MilvusClient(uri=uri, token=token or "")
        self._loaded: set[str] = set()

    def create(self, collection: str, dimension: int) -> None:
        if self.client.has_collection(collection):
            fields = self.client.describe_collection(collection).get("fields", [])
            dims = [f.get("params", {}).get("dim") for f in fields if f.get("name") == "vector"]
            if dims and int(dims[0]) != dimension:
                raise StoreError(f"milvus collection {collection!r} exists with dimension {dims[0]}")
            return
        self.client.create_collection(
            collection,
            dimension=dimension,
            metric_type="IP",
            auto_id=False,
            id_type="int",
            primary_field_name="id",
            vector_field_name="vector",
            consistency_level="Strong",
        )

    def drop(self, collection: str) -> None:
        self._loaded.discard(collection)
        if self.client.has_collection(collection):
            self.client.drop_collection(collection)

    def upsert(self, collection: str, ids: list[int], vectors: np.ndarray) -> None:
        self._exists(collection)
        rows = [{"id": int(i), "vector": v.tolist()} for i, v in zip(ids, vectors, strict=True)]
        for start in range(0, len(rows), 512):
            self.client.upsert(collection, data=rows[start : start + 512])

    def delete(self, collection: str, ids: list[int]) -> None:
        if ids:
            self._exists(collection)
            self.client.delete(collection, ids=[int(i) for i in ids])

    def search(
        self, collection: str, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        self._exists(collection)
        expr = ""
        if allowed is not None:
            if not allowed:
                return []
            expr = f"id in [{','.join(str(int(i)) for i in allowed)}]"
        res = self.client.search(
            collection, data=[np.asarray(vector).tolist()], limit=k, filter=expr, output_fields=["id"]
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in res[0]]

    def export(self, collection: str, batch: int = 1024) -> Iterator[tuple[list[int], np.ndarray]]:
        self._exists(collection)
        it = self.client.query_iterator(collection, batch_size=batch, output_fields=["vector"])
        try:
            while rows := it.next():
                yield [int(r["id"]) for r in rows], np.array([r["vector"] for r in rows], dtype=np.float32)
        finally:
            it.close()

    def count(self, collection: str) -> int:
        self._exists(collection)
        res = self.client.query(collection, filter="id >= 0", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def close(self) -> None:
        self.client.close()

    def _exists(self, collection: str) -> None:
        if collection in self._loaded:
            return
        if not self.client.has_collection(collection):
            raise StoreError(f"collection {collection!r} does not exist in milvus")
        self.client.load_collection(collection)  # a reopened Milvus Lite file starts with it released
        self._loaded.add(collection)


def open_milvus(root: Path, opts: dict[str, Any]) -> MilvusStore:
    """The `milvus` entry point of `ailab.stores`: a server by `url`, else Milvus Lite in one file."""
    return MilvusStore(uri=opts.get("url") or str(root / "milvus.db"), token=opts.get("token"))
