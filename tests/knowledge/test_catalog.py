"""The knowledge catalog itself, on both implementations (the data dir's SQLite file and the lab's
PostgreSQL database): documents and chunks, sparse ranking with title/heading weights, hostile query text,
filters, concurrent writers, and the PostgreSQL migration in the lab's migration list."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ailab.db import all_migrations, make_engine, migrate
from ailab.knowledge.catalog import Collection, KnowledgeCatalog, open_catalog
from tests.conftest import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeCatalog]:
    if request.param == "sqlite":
        yield open_catalog(tmp_path / "knowledge")
        return
    engine = make_engine(fresh_pg_database(request.getfixturevalue("postgres_server"), "kc"))
    migrate(engine, all_migrations())
    try:
        yield open_catalog(tmp_path / "knowledge", engine)
    finally:
        engine.dispose()


def collection(name: str = "docs") -> Collection:
    return Collection(f"id-{name}", name, None, "embedded", "embed", 4, 256, 32, 1, "test")


def add(
    cat: KnowledgeCatalog, coll: Collection, doc_id: str, title: str, chunks: list[tuple[str, str]]
) -> list[int]:
    doc = {
        "id": doc_id,
        "collection_id": coll.id,
        "source": f"/docs/{doc_id}.md",
        "title": title,
        "kind": "markdown",
        "content_hash": "0" * 64,
        "mtime": 1.5,
        "size": 10,
    }
    rows = [
        (text, i, heading, {"source": doc["source"], "ord": i, "lang": "en"})
        for i, (text, heading) in enumerate(chunks)
    ]
    with cat.connect() as tx:
        cat.delete_document(tx, doc_id)
        return cat.insert_document(tx, doc, rows)


def test_documents_chunks_and_deletion(catalog: KnowledgeCatalog) -> None:
    coll = collection()
    catalog.add_collection(coll)
    with pytest.raises(KeyError, match="already exists"):
        catalog.add_collection(collection())
    ids = add(catalog, coll, "d1", "Vacuum", [("dead tuples are reclaimed", "Vacuum"), ("second part", "")])
    assert catalog.collection("docs") == coll and catalog.collection(coll.id) == coll
    assert catalog.stats(coll.id) == {"documents": 1, "chunks": 2}
    assert [d["id"] for d in catalog.documents(coll.id, "/docs/")] == ["d1"]
    assert catalog.documents(coll.id, "/elsewhere/") == []
    assert catalog.document(coll.id, "d1")["title"] == "Vacuum"  # type: ignore[index]
    rows = catalog.chunks(ids)
    assert rows[ids[0]].text == "dead tuples are reclaimed" and rows[ids[0]].meta["ord"] == 0
    assert catalog.document_of([*ids, 999_999]) == {ids[0]: "d1", ids[1]: "d1"}
    # Re-writing a document replaces its chunks.
    again = add(catalog, coll, "d1", "Vacuum", [("only one chunk now", "")])
    assert set(again).isdisjoint(ids) and catalog.stats(coll.id)["chunks"] == 1
    with catalog.connect() as tx:
        assert catalog.source_of(tx, "d1") == "/docs/d1.md"
        assert catalog.delete_document(tx, "d1") == again
        assert catalog.source_of(tx, "d1") is None
    assert catalog.stats(coll.id) == {"documents": 0, "chunks": 0}


def test_a_failed_transaction_leaves_nothing(catalog: KnowledgeCatalog) -> None:
    coll = collection()
    catalog.add_collection(coll)
    with pytest.raises(RuntimeError), catalog.connect() as tx:
        catalog.insert_document(tx, {**_doc(coll, "d1")}, [("lost words", 0, "", {})])
        raise RuntimeError("the vector store failed")
    assert catalog.stats(coll.id)["chunks"] == 0 and catalog.bm25(coll.id, "lost words", 5) == []


def _doc(coll: Collection, doc_id: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "collection_id": coll.id,
        "source": doc_id,
        "title": doc_id,
        "kind": "text",
        "content_hash": "0" * 64,
        "mtime": None,
        "size": 1,
    }


def test_sparse_ranking_weights_title_and_heading_over_body(catalog: KnowledgeCatalog) -> None:
    coll, other = collection(), collection("other")
    catalog.add_collection(coll)
    catalog.add_collection(other)
    body = add(catalog, coll, "body", "Notes", [("the lighthouse keeper lit the lamp", "")])[0]
    title = add(catalog, coll, "title", "Lighthouse", [("a keeper lit the lamp", "")])[0]
    heading = add(catalog, coll, "heading", "Notes", [("the keeper lit a lamp", "Lighthouse")])[0]
    add(catalog, other, "elsewhere", "Lighthouse", [("lighthouse lighthouse", "Lighthouse")])
    hits = catalog.bm25(coll.id, "Lighthouse?", 10)
    assert [i for i, _ in hits] == [title, heading, body]  # and nothing from the other collection
    assert hits[0][1] > hits[1][1] > hits[2][1] > 0
    # OR of the terms, stemmed; an allowed set narrows the candidates.
    assert {i for i, _ in catalog.bm25(coll.id, "lighthouses or zebras", 10)} == {title, heading, body}
    assert [i for i, _ in catalog.bm25(coll.id, "lighthouse", 10, allowed={body})] == [body]
    assert catalog.bm25(coll.id, "zebra", 10) == [] and catalog.bm25(coll.id, "", 10) == []


@pytest.mark.parametrize(
    "query",
    [
        "lamp' & !keeper | (",
        "lamp:* <-> keeper",
        "\\'; DROP TABLE knowledge_chunks; --",
        "lamp\x00keeper",
        '"unbalanced quote lamp',
        "NEAR(lamp keeper) AND OR NOT *",
        "ｌａｍｐ 灯台 lámp",
        " ".join(f"w{i}" for i in range(1000)) + " lamp",
    ],
)
def test_hostile_queries_are_plain_words(catalog: KnowledgeCatalog, query: str) -> None:
    coll = collection()
    catalog.add_collection(coll)
    ids = add(catalog, coll, "d", "Notes", [("the keeper lit the lamp", "")])
    hits = catalog.bm25(coll.id, query, 5)
    assert all(i in ids for i, _ in hits)
    assert catalog.stats(coll.id)["chunks"] == 1  # nothing ran but the search


def test_nul_characters_and_filters(catalog: KnowledgeCatalog) -> None:
    coll = collection()
    catalog.add_collection(coll)
    ids = add(catalog, coll, "d", "Ti\x00tle", [("bro\x00ken text", "he\x00ad")])
    assert "ken" in catalog.chunks(ids)[ids[0]].text
    assert catalog.filter_ids(coll.id, {"source_prefix": "/docs/"}) == set(ids)
    assert catalog.filter_ids(coll.id, {"source_prefix": "/other/"}) == set()
    assert catalog.filter_ids(coll.id, {"document_id": "d", "lang": "en", "ord": 0}) == set(ids)
    assert catalog.filter_ids(coll.id, {"ord": "0"}) == set()  # a string is not the number
    with pytest.raises(ValueError, match="unknown field"):
        catalog.filter_ids(coll.id, {"no-such'field": 1})


def test_drop_collection_and_set_store(catalog: KnowledgeCatalog) -> None:
    coll = collection()
    catalog.add_collection(coll)
    add(catalog, coll, "d", "Notes", [("lamp", "")])
    catalog.set_store(coll.id, "qdrant")
    assert catalog.collection("docs").store == "qdrant"  # type: ignore[union-attr]
    catalog.drop_collection(coll.id)
    assert catalog.collections() == [] and catalog.bm25(coll.id, "lamp", 5) == []
    assert catalog.stats(coll.id) == {"documents": 0, "chunks": 0}


def test_concurrent_writers_of_one_document_leave_one_copy(catalog: KnowledgeCatalog) -> None:
    coll = collection()
    catalog.add_collection(coll)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(n: int) -> None:
        try:
            start.wait(timeout=30)
            for round_ in range(5):
                add(catalog, coll, "same", "Notes", [(f"writer {n} round {round_}", ""), ("tail", "")])
        except BaseException as exc:  # collected and re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert catalog.stats(coll.id) == {"documents": 1, "chunks": 2}
    assert len(catalog.filter_ids(coll.id, {"document_id": "same"})) == 2


def test_the_migration_is_in_the_lab_list_and_a_noop_on_sqlite(tmp_path: Path) -> None:
    assert "knowledge_0001_catalog" in [m.name for m in all_migrations()]
    engine = make_engine(f"sqlite:///{tmp_path / 'ailab.db'}")
    try:
        assert "knowledge_0001_catalog" in migrate(engine, all_migrations())
        with engine.connect() as conn:
            tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
        assert not any(t.startswith("knowledge_") for t in tables)
        assert type(open_catalog(tmp_path / "knowledge", engine)).__name__ == "SqliteCatalog"
    finally:
        engine.dispose()
