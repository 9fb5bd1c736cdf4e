"""A BM25 index for large collections of the SQLite catalog: postings in numpy arrays, persisted in the
data dir, so a query costs a few vectorised passes over the query terms' postings instead of FTS5 scoring
every matching row (352 ms p95 at 1M chunks; docs/benchmarks.md).

Same ranking semantics as the catalog's FTS5 `bm25(chunks_fts, 4, 2, 1)`: the same tokens (FTS5's own
`porter unicode61` tokenizer produces them, through an in-memory FTS5 table and `fts5vocab`), one phrase a
query word, column-weighted term frequency, k1 = 1.2, b = 0.75, idf = ln((N − n + 0.5) / (n + 0.5))
(1e-6 when ≤ 0), document length = tokens over all columns. One difference: N, n and the average length
are this collection's (FTS5's are the whole table's, every collection together); with one collection
the scores are FTS5's (tests/knowledge/test_sparse.py).

The index is a cache of the catalog, never the truth: chunks with an id above `max_id` are added, and
deletions logged in the catalog's `chunk_deletions` after `del_seq` are applied, whenever a search finds
the catalog ahead (two indexed lookups a search). Slots are positions in `slots.npy` (chunk id per slot,
-1 once deleted); postings live in segments (`seg-<first slot>-<end slot>.npz`: sorted terms, offsets,
slots, weighted frequencies); a save writes the new segment and merges small ones. Any process may save,
under a file lock; a process that finds a newer save on disk loads it instead.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

K1, B = 1.2, 0.75
BATCH = 50_000  # chunks tokenized per pass (one in-memory FTS5 table)
SAVE_ROWS = 1_000  # a catch-up that adds at least this many chunks saves a segment
MAX_SEGMENTS = 8
TOKENIZER = "porter unicode61"


@dataclass
class Segment:
    terms: np.ndarray  # sorted unique terms (str)
    offsets: np.ndarray  # int64, len(terms) + 1
    slots: np.ndarray  # int32, postings of term i at offsets[i]:offsets[i + 1]
    freqs: np.ndarray  # float32, column-weighted term frequency
    first: int  # slot range [first, end)
    end: int
    tag: str = field(default_factory=lambda: os.urandom(4).hex())  # two processes' files never collide

    _lookup: dict[str, int] | None = None

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        if self._lookup is None:  # a dict beats a binary search over numpy strings
            self._lookup = {str(t): i for i, t in enumerate(self.terms)}
        i = self._lookup.get(term)
        if i is None:
            return None
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.slots[lo:hi], self.freqs[lo:hi]

    @property
    def name(self) -> str:
        return f"seg-{self.first}-{self.end}-{self.tag}.npz"


def _segment(term_of: list[str], slots: np.ndarray, freqs: np.ndarray, first: int, end: int) -> Segment:
    terms, tid = np.unique(np.asarray(term_of, dtype=str), return_inverse=True)
    return _grouped(terms, tid.astype(np.int64), slots, freqs, first, end)


def _grouped(
    terms: np.ndarray, tid: np.ndarray, slots: np.ndarray, freqs: np.ndarray, first: int, end: int
) -> Segment:
    order = np.lexsort((slots, tid))
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(np.bincount(tid, minlength=len(terms)), out=offsets[1:])
    return Segment(terms, offsets, slots[order].astype(np.int32), freqs[order].astype(np.float32), first, end)


def merge(segs: list[Segment]) -> Segment:
    terms = np.unique(np.concatenate([s.terms for s in segs]))
    tids, slots, freqs = [], [], []
    for s in segs:
        mapped = np.searchsorted(terms, s.terms)
        tids.append(np.repeat(mapped, np.diff(s.offsets)))
        slots.append(s.slots)
        freqs.append(s.freqs)
    return _grouped(
        terms,
        np.concatenate(tids).astype(np.int64),
        np.concatenate(slots),
        np.concatenate(freqs),
        min(s.first for s in segs),
        max(s.end for s in segs),
    )


class Tokenizer:
    """FTS5's own tokenizer, through an in-memory FTS5 table: the index's tokens are the catalog's."""

    def __init__(self, weights: tuple[float, ...]) -> None:
        self.weights = weights
        self._words: dict[str, tuple[str, ...]] = {}
        self._query_db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _table(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(":memory:")
        try:
            db.execute(f"CREATE VIRTUAL TABLE t USING fts5(title, heading, text, tokenize='{TOKENIZER}')")
            db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
            yield db
        finally:
            db.close()

    def rows(self, rows: list[tuple[str, str, str]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(title, heading, text) rows → postings (term, row, weighted frequency) and tokens per row."""
        col_weight = {"title": self.weights[0], "heading": self.weights[1], "text": self.weights[2]}
        with self._table() as db:
            db.executemany(
                "INSERT INTO t (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                [(i, *r) for i, r in enumerate(rows)],
            )
            pairs: dict[tuple[str, int], float] = {}
            lens = np.zeros(len(rows), dtype=np.int32)
            for term, doc, col in db.execute("SELECT term, doc, col FROM v"):
                key = (term, doc)
                pairs[key] = pairs.get(key, 0.0) + col_weight[col]
                lens[doc] += 1
        terms = [t for t, _ in pairs]
        docs = np.fromiter((d for _, d in pairs), dtype=np.int64, count=len(pairs))
        freqs = np.fromiter(pairs.values(), dtype=np.float32, count=len(pairs))
        return terms, docs, freqs, lens

    def words(self, words: list[str]) -> list[tuple[str, ...]]:
        """The tokens FTS5 makes of each query word (cached; one shared in-memory table for the rest)."""
        with self._lock:
            missing = [w for w in dict.fromkeys(words) if w not in self._words]
            if missing:
                if self._query_db is None:
                    self._query_db = sqlite3.connect(":memory:", check_same_thread=False)
                    self._query_db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{TOKENIZER}')")
                    self._query_db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
                db = self._query_db
                db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", list(enumerate(missing)))
                found: dict[int, list[str]] = {}
                for term, doc in db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
                    found.setdefault(int(doc), []).append(str(term))
                db.execute("DELETE FROM t")
                if len(self._words) > 100_000:
                    self._words.clear()
                for i, w in enumerate(missing):
                    self._words[w] = tuple(found.get(i, ()))
            return [self._words[w] for w in words]


@dataclass
class SparseIndex:
    """One collection's postings in this process, and how far into the catalog they reach."""

    directory: Path
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # chunk id per slot
    lens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    segments: list[Segment] = field(default_factory=list)
    max_id: int = 0  # chunks up to this id are in
    del_seq: int = 0  # deletions up to this sequence number are applied
    saved: tuple[int, int] = (0, 0)  # (max_id, del_seq) of the files as this process last saw them
    live: int = 0
    live_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- catching up with the catalog -----------------------------------------------------------

    def add(self, tok: Tokenizer, rows: list[tuple[int, str, str, str]]) -> None:
        """Chunks (id, title, heading, text) with ids above `max_id`, in id order."""
        for lo in range(0, len(rows), BATCH):
            part = rows[lo : lo + BATCH]
            terms, docs, freqs, lens = tok.rows([(r[1], r[2], r[3]) for r in part])
            first = len(self.ids)
            self.segments.append(_segment(terms, docs + first, freqs, first, first + len(part)))
            self.ids = np.concatenate([self.ids, np.array([r[0] for r in part], dtype=np.int64)])
            self.lens = np.concatenate([self.lens, lens])
            self.live += len(part)
            self.live_tokens += int(lens.sum())
            self.max_id = max(self.max_id, int(part[-1][0]))

    def delete(self, chunk_ids: Iterable[int]) -> None:
        want = np.fromiter(chunk_ids, dtype=np.int64)
        if len(want) == 0 or len(self.ids) == 0:
            return
        rows = np.flatnonzero(np.isin(self.ids, want))
        if len(rows):
            self.live -= len(rows)
            self.live_tokens -= int(self.lens[rows].sum())
            self.ids = self.ids.copy()  # a loaded array may be read-only
            self.ids[rows] = -1

    # -- searching ------------------------------------------------------------------------------

    def _parts(self, term: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """A term's postings in each segment (views, in slot order: segments cover ascending slots)."""
        return [p for seg in self.segments if (p := seg.postings(term)) is not None]

    def _df(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> int:
        if self.live == len(self.ids):
            return sum(len(p[0]) for p in parts)
        return sum(int((self.ids[p[0]] >= 0).sum()) for p in parts)

    def _live(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        slots = np.concatenate([p[0] for p in parts])
        freqs = np.concatenate([p[1] for p in parts])
        if self.live < len(self.ids):
            alive = self.ids[slots] >= 0
            slots, freqs = slots[alive], freqs[alive]
        return slots, freqs

    def _bm25(self, idf: float, freqs: np.ndarray, slots: np.ndarray, avgdl: float) -> np.ndarray:
        norm = K1 * (1 - B + B * self.lens[slots] / avgdl)
        out: np.ndarray = idf * freqs * (K1 + 1) / (freqs + norm)
        return out

    def search(
        self,
        phrases: list[str],
        k: int,
        allowed: set[int] | None = None,
        common: tuple[float, int] = (1.0, 0),
    ) -> list[tuple[int, float]]:
        """Top k (chunk id, BM25 score) for one-token phrases (one per query word, repeats count).
        `common` = (share, min rows): in a collection of at least min rows, phrases in more than that
        share of the chunks are left out (all but the rarest), as the FTS5 path does.

        Exact top k with MaxScore pruning: terms in falling order of their highest possible
        contribution (idf × (k1 + 1)); once the k-th best partial score among the chunks found so far
        exceeds what the remaining terms could add together, a chunk none of the terms so far contains
        cannot reach the top k, so the remaining (common, long) terms are only looked up for the
        candidates instead of scanned."""
        n = self.live
        if n == 0 or k <= 0 or not phrases:
            return []
        parts = {t: self._parts(t) for t in dict.fromkeys(phrases)}
        df = {t: self._df(p) for t, p in parts.items()}
        share, min_rows = common
        if len(phrases) >= 2 and n >= min_rows:
            keep = [t for t in phrases if df[t] <= share * n]
            phrases = keep or [min(phrases, key=lambda t: df[t])]
        weight: dict[str, float] = {}  # idf × how often the phrase is in the query
        for t in phrases:
            if df[t]:
                idf = math.log((n - df[t] + 0.5) / (df[t] + 0.5))
                weight[t] = weight.get(t, 0.0) + (idf if idf > 0 else 1e-6)
        terms = sorted(weight, key=lambda t: -weight[t])
        if not terms:
            return []
        avgdl = self.live_tokens / n
        want = None if allowed is None else np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        cand = np.zeros(0, dtype=np.int64)
        score = np.zeros(0, dtype=np.float64)
        rest = sum(weight.values()) * (K1 + 1)
        done = 0
        for t in terms:
            slots, freqs = self._live(parts[t])
            if want is not None:
                keep_ = np.isin(self.ids[slots], want)
                slots, freqs = slots[keep_], freqs[keep_]
            part = self._bm25(weight[t], freqs, slots, avgdl)
            cand, score = _add(cand, score, slots.astype(np.int64), part)
            done += 1
            rest -= weight[t] * (K1 + 1)
            if done < len(terms) and len(cand) >= k and _kth(score, k) > rest:
                break
        for t in terms[done:]:  # pruned: looked up for the candidates only
            for p_slots, p_freqs in parts[t]:
                pos = np.minimum(np.searchsorted(p_slots, cand), len(p_slots) - 1)
                hit = p_slots[pos] == cand
                if hit.any():
                    f = p_freqs[pos[hit]]
                    score[hit] += self._bm25(weight[t], f, cand[hit], avgdl)
        chunk = self.ids[cand]
        if len(chunk) > k:
            top = np.argpartition(-score, k - 1)[:k]
            chunk, score = chunk[top], score[top]
        order = np.lexsort((chunk, -score))  # best first; ties by chunk id
        return [(int(chunk[i]), float(score[i])) for i in order]

    # -- persistence ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def save(self) -> None:
        """Write new segments (merging small ones) and the slot table, unless the files are newer."""
        with self._locked():
            on_disk = _read_state(self.directory)
            if on_disk is not None and (on_disk["max_id"], on_disk["del_seq"]) > (self.max_id, self.del_seq):
                return  # another process saved more: this one loads it when it next opens the index
            if len(self.segments) > MAX_SEGMENTS:
                self.segments = [self.segments[0], merge(self.segments[1:])]
                if self.segments[1].end - self.segments[1].first >= (self.segments[0].end // 2):
                    self.segments = [merge(self.segments)]
            names = set()
            for seg in self.segments:
                names.add(seg.name)
                path = self.directory / seg.name
                if not path.exists():
                    tmp = self.directory / (seg.name[:-4] + ".tmp.npz")
                    np.savez(tmp, terms=seg.terms, offsets=seg.offsets, slots=seg.slots, freqs=seg.freqs)
                    os.replace(tmp, path)
            for arr, name in ((self.ids, "slots.npy"), (self.lens, "lens.npy")):
                tmp = self.directory / (name + ".tmp.npy")
                np.save(tmp, arr)
                os.replace(tmp, self.directory / name)
            state = {
                "max_id": self.max_id,
                "del_seq": self.del_seq,
                "segments": sorted(names, key=lambda s: int(s.split("-")[1])),
            }
            tmp = self.directory / "state.json.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.directory / "state.json")
            for old in self.directory.glob("seg-*.npz"):
                if old.name not in names:
                    old.unlink(missing_ok=True)
            self.saved = (self.max_id, self.del_seq)

    @classmethod
    def load(cls, directory: Path) -> SparseIndex:
        """The saved index, or an empty one (the catalog fills it) if there is none or it is torn."""
        out = cls(directory)
        try:
            with out._locked():
                state = _read_state(directory)
                if state is None:
                    return out
                segs = []
                for name in state["segments"]:
                    with np.load(directory / name) as z:
                        first, end, tag = name[4:-4].split("-")
                        segs.append(
                            Segment(
                                z["terms"], z["offsets"], z["slots"], z["freqs"], int(first), int(end), tag
                            )
                        )
                ids = np.load(directory / "slots.npy")
                lens = np.load(directory / "lens.npy")
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return cls(directory)
        if segs and segs[-1].end != len(ids):
            return cls(directory)
        out.ids, out.lens, out.segments = ids, lens, segs
        out.max_id, out.del_seq = int(state["max_id"]), int(state["del_seq"])
        out.saved = (out.max_id, out.del_seq)
        alive = ids >= 0
        out.live, out.live_tokens = int(alive.sum()), int(lens[alive].sum())
        return out


def _read_state(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except FileNotFoundError:
        return None
    return data


def drop(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _add(
    cand: np.ndarray, score: np.ndarray, slots: np.ndarray, add: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of two sorted slot sets summed over their union (a stable sort of two sorted runs is a
    linear merge)."""
    if len(cand) == 0:
        return slots, add.astype(np.float64)
    both = np.concatenate([cand, slots])
    order = np.argsort(both, kind="stable")
    both, values = both[order], np.concatenate([score, add])[order]
    starts = np.flatnonzero(np.concatenate([[True], both[1:] != both[:-1]]))
    return both[starts], np.add.reduceat(values, starts)


def _kth(score: np.ndarray, k: int) -> float:
    return float(np.partition(score, len(score) - k)[len(score) - k])
