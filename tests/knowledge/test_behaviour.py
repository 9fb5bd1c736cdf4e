"""The knowledge behaviour suite, run against every store: the embedded default, Qdrant (local mode) and
Milvus Lite. Ingestion of a mixed folder, metadata, idempotent re-ingest, replacement, deletion, filters,
atomic failure, dimension checks and migration between stores."""

from __future__ import annotations

import pytest

from ailab.access.principal import MASTER
from ailab.knowledge.service import KnowledgeError
from tests.knowledge.corpus import write_corpus


def consistent(svc, coll) -> int:
    """The catalog and the vector store agree on the chunks of a collection; returns their number."""
    stats = svc.catalog.stats(coll.id)
    assert svc.store(coll.store).count(coll.namespace) == stats["chunks"]
    return stats["chunks"]


async def ingest(klab, tmp_path):
    files = write_corpus(tmp_path / "docs")
    coll = await klab.svc.create_collection(MASTER, "docs")
    report = await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"])
    return files, coll, report


async def top(klab, coll, query, **kw):
    hits = await klab.svc.search(MASTER, [coll], query, 3, **kw)
    return hits[0].public()


async def test_mixed_folder_good_files_searchable_bad_ones_reported(klab, tmp_path):
    files, coll, report = await ingest(klab, tmp_path)
    assert report.added == 5 and report.updated == 0
    failed = {f["source"]: f["reason"] for f in report.failed}
    assert set(failed) == {str(files["bad_pdf"].resolve()), str(files["empty"].resolve())}
    assert "PDF" in failed[str(files["bad_pdf"].resolve())]
    assert "empty" in failed[str(files["empty"].resolve())]
    docs = {d["source"] for d in klab.svc.catalog.documents(coll.id)}
    assert str(files["bad_pdf"].resolve()) not in docs and len(docs) == 5  # no partial rows for failures
    consistent(klab.svc, coll)

    hit = await top(klab, coll, "standby server replays WAL")
    assert hit["source"] == str(files["pdf"].resolve()) and hit["page"] == 2
    hit = await top(klab, coll, "autovacuum launcher workers")
    assert hit["title"] == "Routine Vacuuming"
    assert hit["heading"] == ["Routine Vacuuming", "The Autovacuum Daemon"]
    hit = await top(klab, coll, "inverted index for full text search")
    assert hit["title"] == "Index Types" and hit["heading"] == ["Index Types", "GIN Indexes"]
    assert "ignored" not in hit["text"] and "Prev Next" not in hit["text"]
    hit = await top(klab, coll, "load an archive with pg_restore")
    assert hit["source"].endswith("backup.docx") and hit["heading"] == ["Backup Guide", "Restoring"]
    hit = await top(klab, coll, "lighthouse lamp")
    assert hit["source"].endswith("notes.txt") and len(hit["content_hash"]) == 64 and hit["mtime"] > 0


async def test_reingest_is_a_noop_and_a_changed_file_is_replaced(klab, tmp_path):
    files, coll, _ = await ingest(klab, tmp_path)
    before = consistent(klab.svc, coll)
    again = await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"])
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 5, 0)
    assert consistent(klab.svc, coll) == before

    files["txt"].write_text("The harbour master counted the fishing boats at dawn.\n")
    changed = await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"])
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 4)
    assert consistent(klab.svc, coll) == before
    texts = [h.text for h in await klab.svc.search(MASTER, [coll], "lighthouse lamp harbour boats", 10)]
    assert any("harbour master" in t for t in texts) and not any("lighthouse" in t for t in texts)


async def test_removed_files_are_pruned_and_documents_deletable(klab, tmp_path):
    files, coll, _ = await ingest(klab, tmp_path)
    files["txt"].unlink()
    report = await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"], prune=True)
    assert report.removed == 1
    doc = next(d for d in klab.svc.catalog.documents(coll.id) if d["source"].endswith("vacuum.md"))
    assert klab.svc.delete_document(coll, doc["id"])
    assert len(klab.svc.catalog.documents(coll.id)) == 3
    consistent(klab.svc, coll)


async def test_filters_and_search_modes(klab, tmp_path):
    files, coll, _ = await ingest(klab, tmp_path)
    md = str(files["md"].resolve())
    hits = await klab.svc.search(MASTER, [coll], "index", 5, filters={"source": md})
    assert hits and {h.meta["source"] for h in hits} == {md}
    hits = await klab.svc.search(MASTER, [coll], "index", 5, filters={"kind": "pdf"})
    assert {h.meta["page"] for h in hits} <= {1, 2} and all(h.meta["kind"] == "pdf" for h in hits)
    sparse = await klab.svc.search(MASTER, [coll], "pg_dump", 3, mode="sparse")
    assert sparse[0].meta["source"].endswith("backup.docx") and sparse[0].dense is None
    dense = await klab.svc.search(MASTER, [coll], "copying a database into a file", 3, mode="dense")
    assert dense[0].sparse is None and dense[0].dense is not None
    with pytest.raises(ValueError, match="unknown field"):
        await klab.svc.search(MASTER, [coll], "x", 3, filters={"bad key": 1})


async def test_a_failed_write_leaves_no_partial_chunks(klab, tmp_path, monkeypatch):
    write_corpus(tmp_path / "docs")
    coll = await klab.svc.create_collection(MASTER, "atomic")
    store = klab.svc.store(coll.store)
    real = store.upsert

    calls = []

    def flaky(ns, ids, vectors):
        real(ns, ids, vectors)  # the vectors land, then the store fails: all of it must be undone
        calls.append(ids)
        if len(calls) == 3:
            raise RuntimeError("disk full")

    monkeypatch.setattr(store, "upsert", flaky)
    report = await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"])
    broken = [f["source"] for f in report.failed if "disk full" in f["reason"]]
    assert len(broken) == 1 and report.added == 4
    assert broken[0] not in {d["source"] for d in klab.svc.catalog.documents(coll.id)}
    consistent(klab.svc, coll)


async def test_dimension_mismatch_is_refused(klab):
    with pytest.raises(KnowledgeError, match=r"dimension mismatch.*384"):
        await klab.svc.create_collection(MASTER, "wide", dimension=768)
    coll = await klab.svc.create_collection(MASTER, "ok", dimension=384)
    assert coll.dimension == 384 and coll.embedding_model == "embed"
    with pytest.raises(KnowledgeError, match="already exists"):
        await klab.svc.create_collection(MASTER, "ok")


async def test_migrate_to_every_other_store_without_reembedding(klab, tmp_path):
    _, coll, _ = await ingest(klab, tmp_path)
    expected = [h.chunk_id for h in await klab.svc.search(MASTER, [coll], "vacuum dead tuples", 5)]
    n = consistent(klab.svc, coll)
    embedded_before = klab.svc.gateway.api.router.groups["embed"][0].state.latency_ewma
    for target in [s for s in ("qdrant", "milvus", "embedded") if s != coll.store] + [coll.store]:
        moved = klab.svc.migrate(coll, target)
        coll = klab.svc.get("docs")
        assert moved == n and coll.store == target
        assert consistent(klab.svc, coll) == n
        assert [
            h.chunk_id for h in await klab.svc.search(MASTER, [coll], "vacuum dead tuples", 5)
        ] == expected
    assert embedded_before > 0  # embeddings were made once, at ingest


async def test_ingest_leaves_the_search_index_up_to_date(klab, tmp_path):
    """A large collection's sparse index catches up at the end of an ingest (before it returns for
    `index_now`, as `ailab ingest` asks), not at the first search."""
    catalog = klab.svc.catalog
    if not hasattr(catalog, "sparse_min_rows"):
        pytest.skip("the PostgreSQL catalog keeps its own text index")
    catalog.sparse_min_rows = 0  # every collection counts as large here
    write_corpus(tmp_path / "docs")
    coll = await klab.svc.create_collection(MASTER, "docs")
    await klab.svc.ingest_paths(MASTER, coll, [tmp_path / "docs"], index_now=True)
    state = catalog.path.parent / "sparse" / coll.id / "state.json"
    assert state.is_file() and not catalog.indexes.building
    hit = await top(klab, coll, "lighthouse lamp")
    assert hit["source"].endswith("notes.txt")
