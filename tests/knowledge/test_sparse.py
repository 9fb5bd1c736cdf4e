"""The sparse (numpy BM25) index of large SQLite-catalog collections: the same ranking and scores as
FTS5's bm25 on one collection, deletes and re-ingest, persistence across a restart, another process's
writes, and the fall-back to FTS5 where the index cannot answer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ailab.knowledge.catalog import Collection
from ailab.knowledge.catalog_sqlite import SqliteCatalog

WORDS = [f"w{i}" for i in range(60)] + ["lighthouse", "lighthouses", "keeper", "running", "runs", "lamp"]


def collection() -> Collection:
    return Collection("id-docs", "docs", None, "embedded", "embed", 4, 256, 32, 1, "test")


def zipf_text(rng: random.Random, n: int) -> str:
    return " ".join(WORDS[min(int(rng.paretovariate(0.9)) - 1, len(WORDS) - 1)] for _ in range(n))


def add(cat: SqliteCatalog, coll: Collection, doc_id: str, chunks: list[tuple[str, str]]) -> list[int]:
    doc = {
        "id": doc_id,
        "collection_id": coll.id,
        "source": f"/docs/{doc_id}.md",
        "title": f"Title {doc_id} lighthouse" if doc_id.endswith("7") else f"Title {doc_id}",
        "kind": "markdown",
        "content_hash": "0" * 64,
        "mtime": 1.5,
        "size": 10,
    }
    rows = [(text, i, heading, {"source": doc["source"]}) for i, (text, heading) in enumerate(chunks)]
    with cat.connect() as tx:
        cat.delete_document(tx, doc_id)
        return cat.insert_document(tx, doc, rows)


def fill(cat: SqliteCatalog, coll: Collection, docs: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for d in range(docs):
        chunks = [(zipf_text(rng, rng.randint(3, 25)), zipf_text(rng, 2)) for _ in range(rng.randint(1, 4))]
        add(cat, coll, f"d{d}", chunks)


QUERIES = [
    "lighthouse keeper",
    "w3 w17 lamp",
    "Running runs",
    "w0 w1 w2 w40",
    "w55",
    "keeper keeper w9?",
    "zebra",
    "",
    "lighthouses w5 w6 w7 w8",
]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[SqliteCatalog, SqliteCatalog, Collection]:
    """The same catalog file through FTS5 (the default below 20k chunks) and through the sparse index."""
    fts = SqliteCatalog(tmp_path / "catalog.sqlite")
    coll = collection()
    fts.add_collection(coll)
    fill(fts, coll, 150)
    return fts, SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0), coll


def same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert len(a) == len(b)
    assert dict(a).keys() == dict(b).keys()
    for i, score in a:
        assert dict(b)[i] == pytest.approx(score, rel=1e-5)
    assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-5)


def test_scores_and_ranking_equal_fts5(pair: tuple[SqliteCatalog, SqliteCatalog, Collection]) -> None:
    fts, sparse, coll = pair
    for q in QUERIES:
        same(fts.bm25(coll.id, q, 1000), sparse.bm25(coll.id, q, 1000))
        top_fts, top_sparse = fts.bm25(coll.id, q, 5), sparse.bm25(coll.id, q, 5)
        assert [s for _, s in top_fts] == pytest.approx([s for _, s in top_sparse], rel=1e-5)
    assert (fts.path.parent / "sparse" / coll.id / "state.json").is_file()
    allowed = {i for i, _ in fts.bm25(coll.id, "lighthouse", 1000)[::2]}
    same(
        fts.bm25(coll.id, "lighthouse w3", 1000, allowed),
        sparse.bm25(coll.id, "lighthouse w3", 1000, allowed),
    )


def test_deletes_and_reingest_stay_consistent(pair: tuple[SqliteCatalog, SqliteCatalog, Collection]) -> None:
    fts, sparse, coll = pair
    sparse.bm25(coll.id, "lamp", 10)  # built before the changes below
    with fts.connect() as tx:
        gone = fts.delete_document(tx, "d7")
    new = add(fts, coll, "d9", [("lighthouse lighthouse keeper", "lamp")])  # re-ingest: new chunk ids
    for q in QUERIES:
        hits = sparse.bm25(coll.id, q, 1000)
        same(fts.bm25(coll.id, q, 1000), hits)
        assert not {i for i, _ in hits} & set(gone)
    assert new[0] in {i for i, _ in sparse.bm25(coll.id, "lighthouse", 1000)}


def test_persisted_and_caught_up_after_restart(
    pair: tuple[SqliteCatalog, SqliteCatalog, Collection], tmp_path: Path
) -> None:
    fts, sparse, coll = pair
    before = sparse.bm25(coll.id, "lighthouse keeper", 20)
    restarted = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0)
    assert restarted.bm25(coll.id, "lighthouse keeper", 20) == before
    # Another process (here: another catalog object) writes; both readers catch up from the catalog.
    fill(fts, coll, 40, seed=2)  # re-ingests d0..d39 with other texts
    for cat in (sparse, restarted):
        same(fts.bm25(coll.id, "lighthouse keeper w4", 1000), cat.bm25(coll.id, "lighthouse keeper w4", 1000))
    fresh = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0)
    same(fts.bm25(coll.id, "w1 w2", 1000), fresh.bm25(coll.id, "w1 w2", 1000))


def test_torn_files_are_rebuilt_and_drop_removes_them(
    pair: tuple[SqliteCatalog, SqliteCatalog, Collection], tmp_path: Path
) -> None:
    _, sparse, coll = pair
    expect = sparse.bm25(coll.id, "lamp keeper", 50)
    d = tmp_path / "sparse" / coll.id
    for seg in d.glob("seg-*.npz"):
        seg.write_bytes(b"torn")
    assert (
        SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0).bm25(coll.id, "lamp keeper", 50)
        == expect
    )
    sparse.drop_collection(coll.id)
    assert not d.exists() and sparse.bm25(coll.id, "lamp", 5) == []


def test_words_fts5_splits_fall_back_to_fts5(pair: tuple[SqliteCatalog, SqliteCatalog, Collection]) -> None:
    fts, sparse, coll = pair
    ids = add(fts, coll, "snake", [("call the snake_case helper", "")])
    assert (
        [i for i, _ in sparse.bm25(coll.id, "snake_case", 5)]
        == ids
        == [i for i, _ in fts.bm25(coll.id, "snake_case", 5)]
    )


def test_pruned_top_k_equals_fts5_on_random_queries(
    pair: tuple[SqliteCatalog, SqliteCatalog, Collection],
) -> None:
    """Small k makes the MaxScore pruning stop early: the top k's scores are still FTS5's."""
    fts, sparse, coll = pair
    rng = random.Random(7)
    for _ in range(60):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        for k in (1, 3, 10):
            a, b = fts.bm25(coll.id, q, k), sparse.bm25(coll.id, q, k)
            assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-5), (q, k)


def filled(tmp_path: Path) -> tuple[SqliteCatalog, Collection, Path]:
    """A catalog of 150 documents searched by FTS5, its collection, and where its sparse index's state goes."""
    fts = SqliteCatalog(tmp_path / "catalog.sqlite")
    coll = collection()
    fts.add_collection(coll)
    fill(fts, coll, 150)
    return fts, coll, tmp_path / "sparse" / coll.id / "state.json"


def wait_built(catalog: SqliteCatalog, coll: Collection, state: Path) -> None:
    """Until a background catch-up of the collection's index is done and saved (a minute at most)."""
    import time

    deadline = time.monotonic() + 60
    while (coll.id in catalog.indexes.building or not state.is_file()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.is_file() and coll.id not in catalog.indexes.building


def test_a_large_lag_is_caught_up_in_the_background(tmp_path: Path) -> None:
    """A search never waits for a big build: FTS5 answers while a thread catches the index up."""
    fts, coll, state = filled(tmp_path)
    lazy = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0, sparse_sync_rows=5)
    same(fts.bm25(coll.id, "lighthouse keeper", 1000), lazy.bm25(coll.id, "lighthouse keeper", 1000))
    wait_built(lazy, coll, state)
    assert lazy.indexes.loaded[coll.id].max_id > 0
    same(fts.bm25(coll.id, "w3 w17 lamp", 1000), lazy.bm25(coll.id, "w3 w17 lamp", 1000))


def test_refresh_index_after_an_ingest_builds_it_before_the_first_search(tmp_path: Path) -> None:
    """`refresh_index(wait=True)` (what `ailab ingest` calls at its end) leaves an index on disk that is up
    to date, so the first search of another process answers from it at once; deletions are applied too."""
    fts, coll, state = filled(tmp_path)
    fts.refresh_index(coll.id, wait=True)
    assert not state.exists()  # small collection (below sparse_min_rows): FTS5 only, nothing built

    ingester = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0, sparse_sync_rows=5)
    began: list[int] = []
    ingester.refresh_index(coll.id, wait=True, on_build=lambda: began.append(1))
    assert state.is_file() and not ingester.indexes.building
    assert began == [1]  # told as it began (the CLI says so)
    ingester.refresh_index(coll.id, wait=True, on_build=lambda: began.append(2))
    assert began == [1]  # up to date: nothing to do, nothing said
    with fts.connect() as tx:
        fts.delete_document(tx, "d7")
    ingester.refresh_index(coll.id, wait=True)

    server = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0, sparse_sync_rows=5)
    for q in QUERIES:
        same(fts.bm25(coll.id, q, 1000), server.bm25(coll.id, q, 1000))
    assert not server.indexes.building  # nothing was behind: no background catch-up started
    index = server.indexes.loaded[coll.id]
    with server._read() as db:
        assert (index.max_id, index.del_seq) == server.indexes.marks(db, coll.id)


def test_refresh_index_in_the_background(tmp_path: Path) -> None:
    fts, coll, state = filled(tmp_path)
    served = SqliteCatalog(tmp_path / "catalog.sqlite", sparse_min_rows=0, sparse_sync_rows=5)
    served.refresh_index(coll.id)
    wait_built(served, coll, state)
    same(fts.bm25(coll.id, "lighthouse keeper", 1000), served.bm25(coll.id, "lighthouse keeper", 1000))
