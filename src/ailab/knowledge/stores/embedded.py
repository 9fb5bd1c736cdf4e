"""The embedded default store: a memory-mapped float32 matrix in the data dir, searched exactly while a
collection is small and through an HNSW index (stores/ann.py) once it is large.

Per collection: `vectors.f32` (rows) and `ids.i64` (the chunk id of each row, -1 once deleted), both
append-only; `meta.json` (dimension, generation); `ann-<generation>.hnsw` once the collection has
`min_rows` live rows. Deleting marks rows (and marks them deleted in the graph); a collection whose rows
are mostly dead is compacted, which renumbers rows, bumps the generation and rebuilds the index. Writers
take an exclusive file lock, so the CLI can ingest while a server searches; readers re-map the files, and
reload the index, when they change. The writer indexes what it appends and saves the index every
`save_rows` rows and on close; rows not yet in a reader's index are searched exactly beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ailab.knowledge.stores.ann import AnnIndex, AnnParams, index_path, stamp_of
from ailab.knowledge.stores.base import StoreError
from ailab.knowledge.stores.embedded_search import search_view

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class _View:
    stamp: tuple[int, int, int, int]  # ids.i64 mtime, size, inode; vectors.f32 inode
    generation: int
    ids: np.ndarray
    vectors: np.ndarray
    _order: np.ndarray | None = None
    _live: int | None = None

    @property
    def live(self) -> int:
        if self._live is None:
            self._live = int((self.ids >= 0).sum())
        return self._live

    @property
    def vectors_ino(self) -> int:
        return self.stamp[3]

    def order(self) -> np.ndarray:
        """Row numbers sorted by chunk id (for resolving a filter's ids to rows)."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        return self._order

    def rows_of(self, allowed: set[int]) -> np.ndarray:
        want = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        order = self.order()
        pos = np.searchsorted(self.ids, want, sorter=order)
        pos = pos[pos < len(order)]
        rows = order[pos]
        # Unique: an id that is absent lands on its neighbour's row, which may be allowed in its own right.
        found: np.ndarray = np.unique(rows[np.isin(self.ids[rows], want) & (self.ids[rows] >= 0)])
        return found


class EmbeddedStore:
    kind = "embedded"

    def __init__(self, root: Path, opts: dict[str, Any] | None = None) -> None:
        self.root = root
        self.params = AnnParams.of(opts or {})
        self._views: dict[str, _View] = {}
        self._anns: dict[str, AnnIndex] = {}
        self._lock = threading.Lock()

    # -- layout -----------------------------------------------------------------------------------

    def _dir(self, collection: str) -> Path:
        if not _NAME.match(collection):
            raise StoreError(f"invalid collection name {collection!r}")
        return self.root / collection

    def _meta(self, collection: str) -> dict[str, Any]:
        meta = self._dir(collection) / "meta.json"
        try:
            data: dict[str, Any] = json.loads(meta.read_text())
        except FileNotFoundError:
            raise StoreError(f"collection {collection!r} does not exist in the embedded store") from None
        return data

    @contextmanager
    def _locked(self, collection: str) -> Iterator[Path]:
        d = self._dir(collection)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield d
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- interface --------------------------------------------------------------------------------

    def create(self, collection: str, dimension: int) -> None:
        with self._locked(collection) as d:
            meta = d / "meta.json"
            if meta.is_file():
                if int(json.loads(meta.read_text())["dimension"]) != dimension:
                    raise StoreError(f"collection {collection!r} exists with another dimension")
                return
            (d / "vectors.f32").touch()
            (d / "ids.i64").touch()
            _write_meta(d, {"dimension": dimension, "generation": 0})

    def drop(self, collection: str) -> None:
        shutil.rmtree(self._dir(collection), ignore_errors=True)
        with self._lock:
            self._views.pop(collection, None)
            self._anns.pop(collection, None)

    def upsert(self, collection: str, ids: list[int], vectors: np.ndarray) -> None:
        dim = int(self._meta(collection)["dimension"])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != dim or len(ids) != len(vectors):
            raise StoreError(f"expected {len(ids)} vectors of dimension {dim}, got shape {vectors.shape}")
        with self._locked(collection) as d:
            self._mark_deleted(d, ids)
            with open(d / "vectors.f32", "ab") as fv:
                fv.write(vectors.tobytes())
            with open(d / "ids.i64", "ab") as fi:
                fi.write(np.asarray(ids, dtype=np.int64).tobytes())
            if not self._maybe_compact(collection, d):
                self._index_tail(collection, d, save=False)

    def delete(self, collection: str, ids: list[int]) -> None:
        if not ids:
            return
        with self._locked(collection) as d:
            if self._mark_deleted(d, ids) and not self._maybe_compact(collection, d):
                ann = self._anns.get(collection)
                if ann is not None:
                    ann.sync_dead(np.fromfile(d / "ids.i64", dtype=np.int64))

    def search(
        self, collection: str, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        view = self._view(collection)
        if len(view.ids) == 0 or k <= 0:
            return []
        ann = self._reader_index(collection, view)
        return search_view(view, ann, np.asarray(vector, dtype=np.float32), k, allowed, self.params)

    def export(self, collection: str, batch: int = 1024) -> Iterator[tuple[list[int], np.ndarray]]:
        view = self._view(collection)
        alive = np.flatnonzero(view.ids >= 0)
        for start in range(0, len(alive), batch):
            rows = alive[start : start + batch]
            yield [int(i) for i in view.ids[rows]], np.array(view.vectors[rows])

    def count(self, collection: str) -> int:
        return int((self._view(collection).ids >= 0).sum())

    def reindex(self, collection: str) -> dict[str, Any]:
        """Drop dead rows and rebuild the ANN index from the stored vectors (`ailab knowledge reindex`)."""
        t0 = time.perf_counter()
        with self._locked(collection) as d:
            self._meta(collection)
            dead = int((np.fromfile(d / "ids.i64", dtype=np.int64) < 0).sum())
            if dead:
                self._compact(collection, d)
            else:
                self._drop_index(collection, d)
                self._index_tail(collection, d, save=True)
            ann = self._anns.get(collection)
            live = int((np.fromfile(d / "ids.i64", dtype=np.int64) >= 0).sum())
        return {
            "rows": live,
            "dead_rows_removed": dead,
            "index": "hnsw" if ann is not None else f"none (exact search below {self.params.min_rows} rows)",
            "seconds": round(time.perf_counter() - t0, 2),
        }

    def index_info(self, collection: str) -> dict[str, Any]:
        view = self._view(collection)
        ann = self._reader_index(collection, view)
        return {
            "rows": len(view.ids),
            "live": int((view.ids >= 0).sum()),
            "indexed": 0 if ann is None else ann.covered,
            "generation": view.generation,
        }

    def close(self) -> None:
        with self._lock:
            anns = list(self._anns.items())
        for collection, ann in anns:
            if ann.covered > ann.saved_rows:
                self._save_if_ours(collection, ann)
        with self._lock:
            self._views.clear()
            self._anns.clear()

    # -- the index --------------------------------------------------------------------------------

    def _index_tail(self, collection: str, d: Path, save: bool) -> None:
        """Under the writer lock: bring this process's index up to the files, saving now and then."""
        meta = json.loads((d / "meta.json").read_text())
        ids = np.fromfile(d / "ids.i64", dtype=np.int64)
        ann = self._anns.get(collection)
        if ann is None and int((ids >= 0).sum()) < self.params.min_rows:
            return
        dim, gen = int(meta["dimension"]), int(meta.get("generation", 0))
        ino = os.stat(d / "vectors.f32").st_ino
        path = index_path(d, gen)
        if ann is None or ann.generation != gen or ann.vectors_ino != ino or ann.file_stamp != stamp_of(path):
            # Another process saved (or nothing is cached here): start from the file, else from scratch.
            ann = AnnIndex.load(d, dim, gen, ino, self.params) or AnnIndex(dim, gen, ino, self.params)
        vectors = np.memmap(d / "vectors.f32", dtype=np.float32, mode="r", shape=(len(ids), dim))
        ann.extend(vectors, ids)
        with self._lock:
            self._anns[collection] = ann
        unsaved = ann.covered - ann.saved_rows
        if save or unsaved >= max(self.params.save_rows, ann.saved_rows // 4):
            ann.save(d)

    def _save_if_ours(self, collection: str, ann: AnnIndex) -> None:
        """On close: save an index with unsaved rows, unless another process saved a newer one."""
        try:
            with self._locked(collection) as d:
                meta = json.loads((d / "meta.json").read_text())
                same_file = stamp_of(index_path(d, ann.generation)) == ann.file_stamp
                if int(meta.get("generation", 0)) == ann.generation and same_file:
                    ann.save(d)
        except (FileNotFoundError, json.JSONDecodeError):
            return  # dropped meanwhile

    def _reader_index(self, collection: str, view: _View) -> AnnIndex | None:
        with self._lock:
            ann = self._anns.get(collection)
        d = self._dir(collection)
        path = index_path(d, view.generation)
        on_disk = stamp_of(path)
        # A cached index holds while its rows are still the files' rows; another process's newer save
        # replaces it, unless this process has indexed rows of its own that are not saved yet.
        fresh = (
            ann is not None
            and ann.generation == view.generation
            and ann.vectors_ino == view.vectors_ino
            and (ann.file_stamp == on_disk or ann.covered > ann.saved_rows)
        )
        if not fresh:
            if on_disk is None:
                return None
            dim = int(view.vectors.shape[1])
            ann = AnnIndex.load(d, dim, view.generation, view.vectors_ino, self.params)
            if ann is None:
                return None
            with self._lock:
                self._anns[collection] = ann
        assert ann is not None
        ann.sync_dead(view.ids, view.stamp)
        return ann

    def _drop_index(self, collection: str, d: Path) -> None:
        with self._lock:
            self._anns.pop(collection, None)
        for old in d.glob("ann-*.hnsw"):
            old.unlink(missing_ok=True)

    # -- internals --------------------------------------------------------------------------------

    def _view(self, collection: str) -> _View:
        meta = self._meta(collection)
        dim, gen = int(meta["dimension"]), int(meta.get("generation", 0))
        d = self._dir(collection)
        si, sv = os.stat(d / "ids.i64"), os.stat(d / "vectors.f32")
        stamp = (si.st_mtime_ns, si.st_size, si.st_ino, sv.st_ino)
        with self._lock:
            view = self._views.get(collection)
            if view is not None and view.stamp == stamp and view.generation == gen:
                return view
        n = min(si.st_size // 8, sv.st_size // (4 * dim))  # a torn append counts only complete rows
        ids = np.fromfile(d / "ids.i64", dtype=np.int64, count=n)
        vectors = (
            np.memmap(d / "vectors.f32", dtype=np.float32, mode="r", shape=(n, dim))
            if n
            else np.zeros((0, dim), dtype=np.float32)
        )
        view = _View(stamp, gen, ids, vectors)
        with self._lock:
            self._views[collection] = view
        return view

    @staticmethod
    def _mark_deleted(d: Path, ids: list[int]) -> int:
        current = np.fromfile(d / "ids.i64", dtype=np.int64)
        rows = np.flatnonzero(np.isin(current, np.asarray(ids, dtype=np.int64)) & (current >= 0))
        if len(rows) == 0:
            return 0
        with open(d / "ids.i64", "r+b") as fh:
            minus = np.int64(-1).tobytes()
            for row in rows:
                fh.seek(int(row) * 8)
                fh.write(minus)
        return len(rows)

    def _maybe_compact(self, collection: str, d: Path) -> bool:
        ids = np.fromfile(d / "ids.i64", dtype=np.int64)
        dead = int((ids < 0).sum())
        if dead < 1024 or dead * 2 < len(ids):
            return False
        self._compact(collection, d)
        return True

    def _compact(self, collection: str, d: Path) -> None:
        """Keep the live rows only; rows are renumbered, so the generation moves on and the index is
        rebuilt. The old index goes first and the generation is bumped before the files are replaced, so
        no reader pairs an index with rows it was not built on."""
        meta = json.loads((d / "meta.json").read_text())
        dim = int(meta["dimension"])
        ids = np.fromfile(d / "ids.i64", dtype=np.int64)
        vectors = np.fromfile(d / "vectors.f32", dtype=np.float32)[: len(ids) * dim].reshape(len(ids), dim)
        alive = ids >= 0
        vectors[alive].tofile(d / "vectors.f32.tmp")
        ids[alive].tofile(d / "ids.i64.tmp")
        self._drop_index(collection, d)
        _write_meta(d, {**meta, "generation": int(meta.get("generation", 0)) + 1})
        # Replace both files atomically; readers holding the old maps keep reading the old inodes.
        os.replace(d / "vectors.f32.tmp", d / "vectors.f32")
        os.replace(d / "ids.i64.tmp", d / "ids.i64")
        self._index_tail(collection, d, save=True)


def _write_meta(d: Path, meta: dict[str, Any]) -> None:
    tmp = d / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, d / "meta.json")


def open_embedded(root: Path, opts: dict[str, Any]) -> EmbeddedStore:
    """The `embedded` entry point of `ailab.stores`: files under the knowledge data directory."""
    return EmbeddedStore(root / "embedded", opts)
