"""The sparse (BM25) indexes of a SQLite catalog's large collections, kept up to date from the catalog.

A collection of `min_rows` chunks or more is searched through a numpy BM25 index beside the catalog file
(`sparse/<collection id>/`, knowledge/sparse.py) with FTS5's ranking: FTS5 scores every row that matches
any query word, which is ~350 ms at a million chunks. An index knows how far it has read the catalog (the
highest chunk id and the last deletion, its "marks"); a search catches a few new chunks up itself, and a
bigger lag (a first search after a large ingest: ~40 s per 100k chunks on a 2-core box) is caught up by a
background thread while FTS5 answers, so no search waits for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ailab.knowledge.catalog_base import BM25_WEIGHTS
from ailab.knowledge.sparse import SAVE_ROWS, SparseIndex, Tokenizer, drop

log = logging.getLogger("ailab.knowledge")
Read = Callable[[], AbstractContextManager[sqlite3.Connection]]


class CatalogIndexes:
    """The loaded indexes of one catalog (`read`: a read transaction on it), by collection id."""

    def __init__(self, root: Path, read: Read, min_rows: int, sync_rows: int) -> None:
        self.root = root  # the folder of the indexes: one sub-folder a collection
        self.read = read
        self.min_rows = min_rows
        self.sync_rows = sync_rows  # the most new chunks a search catches up itself
        self.tokenizer = Tokenizer(BM25_WEIGHTS)
        self.loaded: dict[str, SparseIndex] = {}
        self.building: set[str] = set()  # collections whose index a background thread is catching up
        self._small: dict[str, int] = {}  # collection → max chunk id when it was last found too small
        self._lock = threading.Lock()

    def folder(self, collection_id: str) -> Path:
        return self.root / collection_id

    @staticmethod
    def marks(db: sqlite3.Connection, collection_id: str) -> tuple[int, int]:
        """The collection's highest chunk id and last deletion: how far an up-to-date index has read."""
        max_id = int(
            db.execute("SELECT max(id) FROM chunks WHERE collection_id = ?", (collection_id,)).fetchone()[0]
            or 0
        )
        del_seq = int(
            db.execute(
                "SELECT max(seq) FROM chunk_deletions WHERE collection_id = ?", (collection_id,)
            ).fetchone()[0]
            or 0
        )
        return max_id, del_seq

    def current(self, db: sqlite3.Connection, collection_id: str) -> SparseIndex | None:
        """The collection's index, brought up to the catalog's state in this read transaction; None while
        the collection is small or its index is far behind (FTS5 answers)."""
        max_id, del_seq = self.marks(db, collection_id)
        index = self._load(db, collection_id, max_id)
        if index is None:
            return None
        lag = max(max_id - index.max_id, del_seq - index.del_seq)  # ids: an upper bound of new chunks
        if lag > self.sync_rows:
            self._catch_up_later(collection_id, index)
            return None
        with index.lock:
            if max_id > index.max_id or del_seq > index.del_seq:
                self._catch_up(db, collection_id, index, max_id, del_seq)
        return index

    def refresh(
        self, collection_id: str, wait: bool = False, on_build: Callable[[], None] | None = None
    ) -> None:
        """Bring a large collection's index up to the catalog after an ingest, so the first search does not
        find it behind (FTS5 answers meanwhile, ~1 s at a million chunks). `wait`: here and now (a CLI
        process that ends next; `on_build` is called first, if there is anything to catch up); else in the
        background, as a search would start it."""
        with self.read() as db:
            max_id, del_seq = self.marks(db, collection_id)
            index = self._load(db, collection_id, max_id)
        if index is None or (max_id <= index.max_id and del_seq <= index.del_seq):
            return
        if wait:
            if on_build is not None:
                on_build()
            self._build(collection_id, index)
        else:
            self._catch_up_later(collection_id, index)

    def forget(self, collection_id: str) -> None:
        """A dropped collection: its index out of memory and off the disk."""
        with self._lock:
            self.loaded.pop(collection_id, None)
            self._small.pop(collection_id, None)
        drop(self.folder(collection_id))

    def phrases(self, words: list[str]) -> list[str] | None:
        """The query words as the index's tokens (one a word, as FTS5 makes them); None if a word makes
        several tokens (FTS5 then matches it as a phrase, which the index does not do)."""
        tokens: list[str] = []
        for toks in self.tokenizer.words(words):
            if len(toks) > 1:
                return None
            tokens += toks
        return tokens

    def _load(self, db: sqlite3.Connection, collection_id: str, max_id: int) -> SparseIndex | None:
        """The collection's index as loaded (possibly behind the catalog); None while it is small."""
        with self._lock:
            index = self.loaded.get(collection_id)
            if index is None:
                d = self.folder(collection_id)
                if not (d / "state.json").is_file():
                    if self._small.get(collection_id) == max_id:
                        return None
                    sql = "SELECT count(*) FROM chunks WHERE collection_id = ?"
                    if int(db.execute(sql, (collection_id,)).fetchone()[0]) < self.min_rows:
                        self._small[collection_id] = max_id
                        return None
                index = SparseIndex.load(d)
                self.loaded[collection_id] = index
            return index

    def _build(self, collection_id: str, index: SparseIndex) -> None:
        with self.read() as db, index.lock:
            self._catch_up(db, collection_id, index, *self.marks(db, collection_id))
            index.save()

    def _catch_up_later(self, collection_id: str, index: SparseIndex) -> None:
        with self._lock:
            if collection_id in self.building:
                return
            self.building.add(collection_id)

        def work() -> None:
            try:
                self._build(collection_id, index)
            except Exception:  # a cache: FTS5 keeps answering, the next search tries again
                log.exception("knowledge: building the sparse index of collection %s failed", collection_id)
            finally:
                with self._lock:
                    self.building.discard(collection_id)
                    dropped = self.loaded.get(collection_id) is not index
                if dropped:  # the collection was dropped meanwhile: leave no files behind
                    drop(self.folder(collection_id))

        threading.Thread(target=work, name=f"sparse-index-{collection_id}", daemon=True).start()

    def _catch_up(
        self, db: sqlite3.Connection, collection_id: str, index: SparseIndex, max_id: int, del_seq: int
    ) -> None:
        gone = db.execute(
            "SELECT chunk_id FROM chunk_deletions WHERE collection_id = ? AND seq > ?",
            (collection_id, index.del_seq),
        ).fetchall()
        index.delete(int(r[0]) for r in gone)
        rows = db.execute(
            "SELECT c.id, f.title, f.heading, f.text FROM chunks c JOIN chunks_fts f ON f.rowid = c.id"
            " WHERE c.collection_id = ? AND c.id > ? AND c.id <= ? ORDER BY c.id",
            (collection_id, index.max_id, max_id),
        ).fetchall()
        index.add(self.tokenizer, rows)
        index.max_id, index.del_seq = max(index.max_id, max_id), max(index.del_seq, del_seq)
        if len(rows) >= SAVE_ROWS or len(gone) >= SAVE_ROWS or index.saved == (0, 0):
            index.save()
