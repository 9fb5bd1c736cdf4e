"""Document-level fusion: several chunks of one document count once, each ranked document brings its best
chunks, a collection with fewer documents than `k` still fills `k`, and chunk-level ranking stays available."""

from __future__ import annotations

from typing import Any

import pytest

from ailab.access.principal import MASTER
from ailab.knowledge.fusion import RankedDocument, distinct_documents, fuse_documents, pick_chunks, rrf

DOC = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c"}


def test_a_document_ranks_at_its_best_chunk_among_distinct_documents() -> None:
    assert distinct_documents([(1, 0.9), (2, 0.8), (4, 0.7), (3, 0.6), (5, 0.5)], DOC) == [
        ("a", 0.9),
        ("b", 0.7),
        ("c", 0.5),
    ]


def test_many_chunks_of_one_document_do_not_outweigh_a_document_both_rankings_agree_on() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    sparse = [(4, 9.0), (5, 8.0)]
    chunk_level = [c for c, _ in rrf([dense, sparse])]
    assert chunk_level[0] == 4  # RRF of chunks: 4 is in both lists
    docs = fuse_documents([dense, sparse], DOC)
    assert [d.key for d in docs] == ["b", "a", "c"]
    assert [c for c, _ in docs[1].chunks] == [1, 2, 3]  # a's chunks, best first


def test_weighted_rrf_lets_the_trusted_ranking_lead_and_k_sets_how_fast_ranks_fade() -> None:
    dense = [(1, 0.9), (4, 0.6)]
    sparse = [(5, 9.0), (4, 8.0)]
    assert [c for c, _ in rrf([dense, sparse])] == [4, 1, 5]  # in both lists; 1 and 5 tie
    assert [c for c, _ in rrf([dense, sparse], weights=(1.0, 3.0))] == [4, 5, 1]  # sparse trusted 3×
    plain = dict(rrf([dense, sparse], k=60))
    assert plain[1] == pytest.approx(1 / 61) and dict(rrf([dense], k=10))[1] == pytest.approx(1 / 11)
    by_dense = [d.key for d in fuse_documents([dense, sparse], DOC, k=60, weights=(3.0, 1.0))]
    by_sparse = [d.key for d in fuse_documents([dense, sparse], DOC, k=60, weights=(1.0, 3.0))]
    assert by_dense == ["b", "a", "c"] and by_sparse == ["b", "c", "a"]


def test_pick_takes_the_best_chunks_per_document_then_fills_from_the_top() -> None:
    docs = [
        RankedDocument("a", 3.0, [(1, 0.3), (2, 0.2), (3, 0.1)]),
        RankedDocument("b", 2.0, [(4, 0.25)]),
        RankedDocument("c", 1.0, [(5, 0.15), (6, 0.05)]),
    ]
    assert pick_chunks(docs, 3, 1) == [("a", (1, 0.3)), ("b", (4, 0.25)), ("c", (5, 0.15))]
    assert pick_chunks(docs, 3, 2) == [("a", (1, 0.3)), ("a", (2, 0.2)), ("b", (4, 0.25))]
    # More wanted than documents: their next-best chunks, round by round, kept together per document.
    assert [c for _, (c, _) in pick_chunks(docs, 5, 1)] == [1, 2, 4, 5, 6]
    assert [c for _, (c, _) in pick_chunks(docs[:1], 5, 1)] == [1, 2, 3]
    assert pick_chunks([], 5, 1) == []


def _section(i: int) -> str:
    filler = " ".join(f"word{i}x{j}" for j in range(70))
    return f"## Part {i}\n\nVacuum vacuum vacuum reclaims space in part {i}. {filler}\n"


@pytest.mark.parametrize("klab", [("embedded", "sqlite"), ("embedded", "postgres")], indirect=True)
async def test_search_ranks_documents_and_returns_their_best_chunks(klab: Any) -> None:
    svc = klab.svc
    coll = await svc.create_collection(MASTER, "fusion")
    long_doc = "# Maintenance\n\n" + "\n".join(_section(i) for i in range(6))
    short_doc = "# Harbour\n\nThe harbour master counted boats; a vacuum pump drained the dock.\n"
    report = await svc.ingest_bytes(
        MASTER, coll, [("maintenance.md", long_doc.encode()), ("harbour.md", short_doc.encode())]
    )
    assert report.added == 2 and report.chunks >= 5

    chunks = await svc.search(MASTER, [coll], "vacuum", 3, mode="sparse", group="chunk")
    assert {h.meta["source"] for h in chunks} == {"maintenance.md"}  # one page fills the chunk ranking

    docs = await svc.search(MASTER, [coll], "vacuum", 2, mode="sparse")
    assert [h.meta["source"] for h in docs] == ["maintenance.md", "harbour.md"]
    assert docs[0].chunk_id == chunks[0].chunk_id  # the document's best chunk
    assert docs[0].score > docs[1].score

    two = await svc.search(MASTER, [coll], "vacuum", 3, mode="sparse", per_document=2)
    assert [h.meta["source"] for h in two] == ["maintenance.md", "maintenance.md", "harbour.md"]
    assert [h.chunk_id for h in two[:2]] == [h.chunk_id for h in chunks[:2]]

    hybrid = await svc.search(MASTER, [coll], "vacuum reclaims space", 2)
    assert len({h.meta["document_id"] for h in hybrid}) == 2

    # Fewer documents than k: the results are still k chunks, best first.
    only = await svc.search(MASTER, [coll], "vacuum", 4, mode="sparse", filters={"source": "maintenance.md"})
    assert len(only) == 4 and [h.chunk_id for h in only[:3]] == [h.chunk_id for h in chunks]

    with pytest.raises(ValueError, match="group"):
        await svc.search(MASTER, [coll], "vacuum", 3, group="page")
