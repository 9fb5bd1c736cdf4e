"""An HNSW index (hnswlib, chosen by measurement: docs/benchmarks.md) over the rows of an embedded
collection's `vectors.f32`: labels are row numbers, so the index is a cache of the first `covered` rows.

Rows past `covered` (appended since the index was saved by another process) are searched exactly beside
it; dead rows (ids of -1) are marked deleted in the graph, and every candidate is re-scored exactly from
the float32 rows, so the scores are the exact cosine similarities. The file is
`ann-<generation>.hnsw` in the collection's directory; a compaction renumbers rows and bumps the
generation, which retires the old file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SLICE = 2048  # rows added per lock hold: searches in the same process wait at most one slice


@dataclass(frozen=True)
class AnnParams:
    min_rows: int = 20_000  # below this many live rows, exact search (a few ms) and no index at all
    m: int = 16
    ef_construction: int = 100
    ef_search: int = 96
    threads: int = 2  # build threads (searches use one)
    exact_filter_rows: int = 20_000  # a filter selecting at most this many chunks is searched exactly
    exact_filter_share: float = 0.02  # ... or at most this share of the collection
    save_rows: int = 50_000  # a writer saves after this many unsaved rows (or a quarter of the index)

    @classmethod
    def of(cls, opts: dict[str, Any]) -> AnnParams:
        from ailab.knowledge.stores.base import StoreError

        defaults, known = cls(), {}
        for key, value in opts.items():
            if key not in cls.__dataclass_fields__:
                continue
            kind = type(getattr(defaults, key))
            try:
                known[key] = kind(value)
            except (TypeError, ValueError):
                raise StoreError(
                    f"knowledge.stores.embedded.{key}: expected {kind.__name__}, got {value!r}"
                ) from None
            if known[key] < 0:
                raise StoreError(f"knowledge.stores.embedded.{key}: must not be negative")
        return cls(**known)


def index_path(d: Path, generation: int) -> Path:
    return d / f"ann-{generation}.hnsw"


def stamp_of(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class AnnIndex:
    """One collection's graph in this process, with what it covers and which rows it knows are dead."""

    dim: int
    generation: int
    vectors_ino: int  # the `vectors.f32` inode the row numbers refer to
    params: AnnParams
    index: Any = None
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dead_count: int = 0
    synced: object = None  # the view (of ids) last synced with, so a search syncs only after a change
    saved_rows: int = 0  # rows covered by the file on disk (by this process's last load or save)
    file_stamp: tuple[int, int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def covered(self) -> int:
        return 0 if self.index is None else int(self.index.get_current_count())

    # -- building -------------------------------------------------------------------------------

    def _new(self, capacity: int) -> None:
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=self.dim)
        idx.init_index(
            max_elements=max(capacity, 1024), M=self.params.m, ef_construction=self.params.ef_construction
        )
        idx.set_ef(self.params.ef_search)
        self.index = idx

    def extend(self, vectors: np.ndarray, ids: np.ndarray) -> int:
        """Add rows [covered, len(vectors)) and mark the covered dead rows; returns rows added."""
        start, end = self.covered, len(vectors)
        if self.index is None:
            self._new(int(end * 1.25))
        added = 0
        for lo in range(start, end, SLICE):
            hi = min(lo + SLICE, end)
            chunk = np.ascontiguousarray(vectors[lo:hi], dtype=np.float32)
            with self.lock:
                cap = int(self.index.get_max_elements())
                if hi > cap:
                    self.index.resize_index(max(hi, int(cap * 1.5)))
                self.index.add_items(chunk, np.arange(lo, hi), num_threads=self.params.threads)
            added += hi - lo
        self.sync_dead(ids)
        return added

    def sync_dead(self, ids: np.ndarray, token: object = None) -> None:
        """Mark the covered rows that are dead in `ids` and not yet marked (once per `token`)."""
        if token is not None and token == self.synced:
            return
        self.synced = token
        n = min(self.covered, len(ids))
        if len(self.dead) < n:
            self.dead = np.concatenate([self.dead, np.zeros(n - len(self.dead), dtype=bool)])
        fresh = np.flatnonzero((ids[:n] < 0) & ~self.dead[:n])
        if len(fresh) == 0:
            return
        with self.lock:
            for row in fresh:
                try:
                    self.index.mark_deleted(int(row))
                except RuntimeError:  # marked before the file was saved
                    continue
        self.dead[fresh] = True
        self.dead_count += len(fresh)

    # -- persistence ----------------------------------------------------------------------------

    def save(self, d: Path) -> None:
        path = index_path(d, self.generation)
        tmp = path.with_suffix(".tmp")
        with self.lock:
            self.index.save_index(str(tmp))
            rows = self.covered
        os.replace(tmp, path)
        self.saved_rows, self.file_stamp = rows, stamp_of(path)

    @classmethod
    def load(cls, d: Path, dim: int, generation: int, vectors_ino: int, params: AnnParams) -> AnnIndex | None:
        import hnswlib

        path = index_path(d, generation)
        stamp = stamp_of(path)
        if stamp is None:
            return None
        idx = hnswlib.Index(space="ip", dim=dim)
        try:
            idx.load_index(str(path), max_elements=0)
        except RuntimeError:
            return None  # torn or foreign file: searched exactly until rebuilt
        idx.set_ef(params.ef_search)
        out = cls(dim, generation, vectors_ino, params, idx)
        out.saved_rows, out.file_stamp = out.covered, stamp
        return out

    # -- searching ------------------------------------------------------------------------------

    def candidates(self, q: np.ndarray, fetch: int) -> np.ndarray:
        """Up to `fetch` row numbers near `q` among the live covered rows."""
        live = self.covered - self.dead_count
        fetch = min(fetch, live)
        if fetch <= 0:
            return np.zeros(0, dtype=np.int64)
        with self.lock:
            self.index.set_ef(max(self.params.ef_search, fetch))
            while True:
                try:
                    labels, _ = self.index.knn_query(q, k=fetch, num_threads=1)
                    break
                except RuntimeError:  # the graph could not reach `fetch` live rows: take fewer
                    if fetch == 1:
                        return np.zeros(0, dtype=np.int64)
                    fetch = max(1, fetch // 2)
        rows: np.ndarray = labels[0].astype(np.int64)
        return rows
