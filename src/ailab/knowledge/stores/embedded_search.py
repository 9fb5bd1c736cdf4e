"""Search of one embedded collection: exact, or HNSW candidates re-scored exactly, plus the rows the
index does not cover yet. Which one is decided per query (docs/knowledge.md, "Search at scale"):

- no index (fewer than `min_rows` live rows, or not built yet): exact over every live row;
- a filter that selects few chunks (≤ `exact_filter_rows`, or ≤ `exact_filter_share` of the rows): exact
  over those rows alone, which is both faster and complete;
- otherwise HNSW, asking for enough candidates that `k` survive the filter, and falling back to exact
  over the filtered rows when they do not.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ailab.knowledge.stores.ann import AnnIndex, AnnParams
from ailab.knowledge.stores.base import top_k

if TYPE_CHECKING:
    from ailab.knowledge.stores.embedded import _View


def exact(view: _View, q: np.ndarray, k: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
    """Exact inner product over `rows` (None: every live row)."""
    if rows is None:
        scores = view.vectors @ q
        keep = view.ids >= 0
        if keep.all():
            return top_k(view.ids, scores, k)
        rows = np.flatnonzero(keep)
        return top_k(view.ids[rows], scores[rows], k)
    if len(rows) == 0:
        return []
    return top_k(view.ids[rows], np.asarray(view.vectors[rows]) @ q, k)


def search_view(
    view: _View,
    ann: AnnIndex | None,
    q: np.ndarray,
    k: int,
    allowed: set[int] | None,
    params: AnnParams,
) -> list[tuple[int, float]]:
    n = len(view.ids)
    if allowed is not None:
        if not allowed:
            return []
        rows = view.rows_of(allowed)
        if ann is None or len(rows) <= max(params.exact_filter_rows, params.exact_filter_share * n):
            return exact(view, q, k, rows)
        return _ann(view, ann, q, k, rows) or exact(view, q, k, rows)
    if ann is None:
        return exact(view, q, k, None)
    return _ann(view, ann, q, k, None) or exact(view, q, k, None)


def _ann(
    view: _View, ann: AnnIndex, q: np.ndarray, k: int, allowed_rows: np.ndarray | None
) -> list[tuple[int, float]] | None:
    """HNSW over the covered rows + exact over the rest; None when a filter left fewer than k."""
    n = len(view.ids)
    covered = min(ann.covered, n)
    live = max(1, view.live)
    share = 1.0 if allowed_rows is None else len(allowed_rows) / live
    fetch = math.ceil(k / share * 1.5) + 10  # enough candidates for k to survive a filter
    cand = ann.candidates(q, fetch)
    cand = cand[(cand < covered)]
    cand = cand[view.ids[cand] >= 0]
    if allowed_rows is not None:
        cand = cand[np.isin(cand, allowed_rows)]
    tail = np.arange(covered, n)
    tail = tail[view.ids[tail] >= 0]
    if allowed_rows is not None:
        tail = tail[np.isin(tail, allowed_rows)]
        if len(cand) + len(tail) < min(k, len(allowed_rows)):
            return None
    rows = np.concatenate([cand, tail]) if len(tail) else cand
    if len(rows) == 0:
        return None
    return top_k(view.ids[rows], _score(view, rows, q), k)


def _score(view: _View, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    # Exact cosine from the float32 rows: scores match exact search, whatever the graph stored.
    out: np.ndarray = np.asarray(view.vectors[rows]) @ q
    return out
