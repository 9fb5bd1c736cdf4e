"""Rank fusion for hybrid search: reciprocal rank fusion of chunk rankings, and the same at document level.

Document level (the default): in each ranking (dense, sparse) a document takes the rank of its best chunk
among the distinct documents, so a page that matches with five chunks counts once, like a page that matches
with one; the per-ranking document lists are fused with RRF, and each document brings its best chunks
(ordered by their own chunk-level fused score). Measured on the PostgreSQL docs (docs/benchmarks.md), this
beats chunk-level RRF on questions phrased the way users ask, where many small chunks of one loosely related
page otherwise crowd out the page that answers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

RRF_K = 60
K = TypeVar("K", bound=Hashable)


def rrf(
    lists: Sequence[Sequence[tuple[Any, float]]],
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[Any, float]]:
    """Weighted reciprocal rank fusion: Σ w/(k + rank) over the lists an item appears in, best first
    (`weights` default to 1 each: plain RRF)."""
    scores: dict[Any, float] = {}
    for n, ranking in enumerate(lists):
        w = 1.0 if weights is None else weights[n]
        for rank, (item, _) in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + w / (k + rank + 1)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def distinct_documents(
    ranking: Sequence[tuple[int, float]], document_of: dict[int, K]
) -> list[tuple[K, float]]:
    """A chunk ranking as a document ranking: each document once, at its best chunk, with that score."""
    out: dict[K, float] = {}
    for chunk_id, score in ranking:
        doc = document_of.get(chunk_id)
        if doc is not None and doc not in out:
            out[doc] = score
    return list(out.items())


@dataclass
class RankedDocument:
    key: Any  # a document id, or (collection, document id) once several collections are fused
    score: float
    chunks: list[Any] = field(default_factory=list)  # (chunk id, score) pairs or richer records, best first


def fuse_documents(
    rankings: Sequence[Sequence[tuple[int, float]]],
    document_of: dict[int, Any],
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[RankedDocument]:
    """Fuse chunk rankings at document level; each document carries its chunks, best first."""
    chunk_scores = rrf(rankings, k, weights)
    docs = {
        doc: RankedDocument(doc, score)
        for doc, score in rrf([distinct_documents(r, document_of) for r in rankings], k, weights)
    }
    for chunk_id, score in chunk_scores:
        doc = document_of.get(chunk_id)
        if doc in docs:
            docs[doc].chunks.append((chunk_id, score))
    return list(docs.values())


def pick_chunks(docs: Sequence[RankedDocument], k: int, per_document: int) -> list[tuple[Any, Any]]:
    """Up to `k` (document key, chunk) pairs: the best `per_document` chunks of each document in rank order;
    when the documents run out first, their next-best chunks one round at a time, so a collection of one
    long document still answers with `k` chunks. Each document's chunks stay together, best first."""
    taken = {d.key: 0 for d in docs}
    total = 0
    for d in docs:
        n = min(per_document, len(d.chunks), k - total)
        taken[d.key] = n
        total += n
    level = per_document
    while total < k and any(len(d.chunks) > level for d in docs):
        for d in docs:
            if total < k and len(d.chunks) > level:
                taken[d.key] += 1
                total += 1
        level += 1
    return [(d.key, d.chunks[i]) for d in docs for i in range(taken[d.key])]
