"""The embedded store's ANN index: same results as exact search on small collections, persisted across
restarts, consistent through deletes, re-ingest (upsert of the same ids), compaction and reindex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ailab.knowledge.stores.embedded import EmbeddedStore

DIM = 32
NS = "c_test"
# A small threshold so a few thousand rows get an index; ef high enough that HNSW is exact at this size.
OPTS = {"min_rows": 500, "ef_search": 200, "save_rows": 300, "exact_filter_rows": 50}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact_top(ids: np.ndarray, vectors: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ q), kind="stable")[:k]
    return [int(ids[i]) for i in order]


def filled(root: Path, n: int, seed: int = 1) -> tuple[EmbeddedStore, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    store = EmbeddedStore(root, OPTS)
    store.create(NS, DIM)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    vectors = unit(rng, n)
    for lo in range(0, n, 400):
        store.upsert(NS, [int(i) for i in ids[lo : lo + 400]], vectors[lo : lo + 400])
    return store, ids, vectors


def assert_matches_exact(store: EmbeddedStore, ids: np.ndarray, vectors: np.ndarray, k: int = 10) -> None:
    rng = np.random.default_rng(99)
    for q in unit(rng, 25):
        got = store.search(NS, q, k)
        assert [i for i, _ in got] == exact_top(ids, vectors, q, k)
        want_scores = np.sort(vectors @ q)[::-1][:k]
        assert np.allclose([s for _, s in got], want_scores, atol=1e-5)


def test_below_the_threshold_there_is_no_index(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 300)
    assert store.index_info(NS)["indexed"] == 0
    assert not list((tmp_path / NS).glob("ann-*.hnsw"))
    assert_matches_exact(store, ids, vectors)


def test_index_is_built_incrementally_and_equals_exact(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    info = store.index_info(NS)
    assert info["indexed"] == 2000 and info["live"] == 2000
    assert_matches_exact(store, ids, vectors)


def test_index_persists_across_restart(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    store.close()  # saves what the writer indexed since its last save
    again = EmbeddedStore(tmp_path, OPTS)
    assert again.index_info(NS)["indexed"] == 2000
    assert_matches_exact(again, ids, vectors)


def test_rows_not_yet_saved_are_searched_beside_the_index(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 1200)
    store.close()
    reader = EmbeddedStore(tmp_path, OPTS)
    reader.search(NS, vectors[0], 5)  # loads the saved index
    rng = np.random.default_rng(5)
    writer = EmbeddedStore(tmp_path, {**OPTS, "save_rows": 10_000})
    more = unit(rng, 200)
    writer.upsert(NS, list(range(5000, 5200)), more)  # indexed by the writer, not saved yet
    all_ids = np.concatenate([ids, np.arange(5000, 5200)])
    all_vecs = np.concatenate([vectors, more])
    assert reader.index_info(NS)["indexed"] < len(all_ids)
    assert_matches_exact(reader, all_ids, all_vecs)


def test_deletes_never_come_back(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    store.close()
    reader = EmbeddedStore(tmp_path, OPTS)
    reader.search(NS, vectors[0], 5)
    gone = [int(i) for i in ids[::3]]
    writer = EmbeddedStore(tmp_path, OPTS)
    writer.delete(NS, gone)
    keep = np.isin(ids, gone, invert=True)
    for s in (writer, reader):
        assert s.count(NS) == int(keep.sum())
        assert_matches_exact(s, ids[keep], vectors[keep])
        assert not {i for i, _ in s.search(NS, vectors[0], 50)} & set(gone)


def test_reingest_replaces_vectors(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    rng = np.random.default_rng(7)
    changed = ids[:300]
    fresh = unit(rng, 300)
    store.upsert(NS, [int(i) for i in changed], fresh)  # same chunk ids, new vectors
    vectors = vectors.copy()
    vectors[:300] = fresh
    assert store.count(NS) == 2000
    assert_matches_exact(store, ids, vectors)
    store.close()
    assert_matches_exact(EmbeddedStore(tmp_path, OPTS), ids, vectors)


def test_compaction_renumbers_rows_and_rebuilds_the_index(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 3000)
    gone = [int(i) for i in ids[:1600]]  # more than half dead: compacted
    store.delete(NS, gone)
    meta_gen = store.index_info(NS)["generation"]
    assert meta_gen == 1
    assert sorted(p.name for p in (tmp_path / NS).glob("ann-*.hnsw")) == ["ann-1.hnsw"]
    assert store.index_info(NS)["indexed"] == 1400
    assert_matches_exact(store, ids[1600:], vectors[1600:])
    assert_matches_exact(EmbeddedStore(tmp_path, OPTS), ids[1600:], vectors[1600:])


def test_filters_select_rows_exactly_or_through_the_index(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    rng = np.random.default_rng(3)
    q = unit(rng, 1)[0]
    for size in (10, 1500):  # few: exact over the rows; many: HNSW with a post-filter
        allowed = {int(i) for i in rng.choice(ids, size, replace=False)}
        mask = np.isin(ids, list(allowed))
        got = [i for i, _ in store.search(NS, q, 10, allowed)]
        assert got == exact_top(ids[mask], vectors[mask], q, 10)
    assert store.search(NS, q, 10, set()) == []
    assert store.search(NS, q, 10, {123456789}) == []


def test_reindex_drops_dead_rows_and_rebuilds(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    store.delete(NS, [int(i) for i in ids[:100]])
    (tmp_path / NS / "ann-0.hnsw").unlink()  # e.g. restored from an old backup without the index
    info = store.reindex(NS)
    assert info["rows"] == 1900 and info["dead_rows_removed"] == 100 and info["index"] == "hnsw"
    assert_matches_exact(EmbeddedStore(tmp_path, OPTS), ids[100:], vectors[100:])


def test_a_torn_index_file_falls_back_to_exact(tmp_path: Path) -> None:
    store, ids, vectors = filled(tmp_path, 2000)
    store.close()
    (tmp_path / NS / "ann-0.hnsw").write_bytes(b"not an index")
    reader = EmbeddedStore(tmp_path, OPTS)
    assert reader.index_info(NS)["indexed"] == 0
    assert_matches_exact(reader, ids, vectors)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_k_larger_or_smaller_than_results(tmp_path: Path, k: int) -> None:
    store, ids, vectors = filled(tmp_path, 900)
    assert len(store.search(NS, vectors[0], k)) == k
    assert store.search(NS, vectors[0], k)[0][0] == int(ids[0])


def test_bad_settings_are_refused_with_their_name(tmp_path: Path) -> None:
    from ailab.knowledge.stores import StoreError

    with pytest.raises(StoreError, match=r"embedded\.ef_search: expected int"):
        EmbeddedStore(tmp_path, {"ef_search": "lots"})
    with pytest.raises(StoreError, match="min_rows: must not be negative"):
        EmbeddedStore(tmp_path, {"min_rows": -1})


def test_a_filter_with_absent_ids_gives_each_chunk_once(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, OPTS)
    store.create(NS, DIM)
    vectors = unit(np.random.default_rng(2), 100)
    store.upsert(NS, list(range(0, 200, 2)), vectors)  # even ids only
    allowed = set(range(10, 30))  # odd ones are absent: each lands on an even neighbour's row
    got = [i for i, _ in store.search(NS, vectors[7], 40, allowed)]
    assert sorted(got) == list(range(10, 30, 2))
