"""Knowledge checks: dimension mismatches, Qdrant unreachable, collections left behind by a migration."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ailab.config import load_config
from ailab.knowledge.catalog import Catalog, Collection, KnowledgeCatalog
from ailab.knowledge.stores.embedded import EmbeddedStore
from tests.conftest import UPSTREAM_KEY, fresh_pg_database, model
from tests.ops.doctor.conftest import qdrant_app, run_check, serving
from tests.upstreams.harness import free_port


def _collection(
    data_dir: Path,
    dimension: int,
    store: str = "embedded",
    chunks: int = 0,
    catalog: KnowledgeCatalog | None = None,
) -> Collection:
    catalog = catalog or Catalog(data_dir / "knowledge" / "catalog.sqlite")
    c = Collection(
        id="k1",
        name="docs",
        project_id=None,
        store=store,
        embedding_model="embed",
        dimension=dimension,
        chunk_tokens=200,
        overlap=32,
        created_ms=int(time.time() * 1000),
        created_by="test",
    )
    catalog.add_collection(c)
    if chunks:
        doc = {
            "id": "d1",
            "collection_id": c.id,
            "source": "a.md",
            "title": "A",
            "kind": "md",
            "content_hash": "h",
            "mtime": None,
            "size": 10,
        }
        with catalog.connect() as db:
            catalog.insert_document(db, doc, [(f"chunk {i}", i, "", {}) for i in range(chunks)])
    return c


def _vectors(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_store_with_another_dimension_than_the_catalog_fails_until_rebuilt(lab_config):
    loaded = lab_config()
    c = _collection(loaded.data_dir, 8)
    store = EmbeddedStore(loaded.data_dir / "knowledge" / "embedded")
    store.create(c.namespace, 4)
    store.upsert(c.namespace, [1, 2], _vectors(2, 4))
    result = run_check(loaded, "embedding-dimension")
    assert result.status == "fail"
    assert "catalog says 8 dimensions, embedded store holds 4" in result.saw

    store.drop(c.namespace)
    store.create(c.namespace, 8)
    store.upsert(c.namespace, [1, 2], _vectors(2, 8))
    result = run_check(loaded, "embedding-dimension")
    assert result.status == "pass", result.saw
    assert "lab not running" in result.saw


def test_embedder_that_now_returns_another_dimension_fails(make_gateway, openai_upstream):
    entry = model("embed", "openai/text-embedding-3-small", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    gw = make_gateway({"model_list": [entry]})
    loaded = serving(gw)
    c = _collection(loaded.data_dir, 16)  # built when "embed" was a 16-dim model; the upstream now says 8
    store = EmbeddedStore(loaded.data_dir / "knowledge" / "embedded")
    store.create(c.namespace, 16)
    store.upsert(c.namespace, [1], _vectors(1, 16))
    result = run_check(loaded, "embedding-dimension")
    assert result.status == "fail"
    assert "'embed' now returns 8" in result.saw

    store.drop(c.namespace)
    Catalog(loaded.data_dir / "knowledge" / "catalog.sqlite").drop_collection(c.id)
    c = _collection(loaded.data_dir, 8)
    store.create(c.namespace, 8)
    result = run_check(loaded, "embedding-dimension")
    assert result.status == "pass", result.saw


def test_counts_that_differ_between_catalog_and_store_fail(lab_config):
    loaded = lab_config()
    c = _collection(loaded.data_dir, 8, chunks=3)
    store = EmbeddedStore(loaded.data_dir / "knowledge" / "embedded")
    store.create(c.namespace, 8)
    store.upsert(c.namespace, [1, 2], _vectors(2, 8))
    result = run_check(loaded, "vector-migration")
    assert result.status == "fail" and "3 chunks in the catalog, 2 vectors in embedded" in result.saw

    store.upsert(c.namespace, [3], _vectors(1, 8))
    assert run_check(loaded, "vector-migration").status == "pass"


def test_the_catalog_in_postgresql_is_the_one_checked(lab_config, postgres_server):
    from ailab.db import make_engine, open_database
    from ailab.knowledge.catalog import open_catalog

    loaded = lab_config({"general_settings": {"database_url": fresh_pg_database(postgres_server, "doc")}})
    assert run_check(loaded, "vector-migration").status == "skip"  # a fresh database: no catalog tables yet
    open_database(loaded).dispose()
    assert run_check(loaded, "vector-migration").status == "skip"  # tables, no collection
    engine = make_engine(loaded.config.general_settings.database_url or "")
    try:
        catalog = open_catalog(loaded.data_dir / "knowledge", engine)
        c = _collection(loaded.data_dir, 8, chunks=2, catalog=catalog)
        store = EmbeddedStore(loaded.data_dir / "knowledge" / "embedded")
        store.create(c.namespace, 8)
        store.upsert(c.namespace, [1], _vectors(1, 8))
        result = run_check(loaded, "vector-migration")
        assert result.status == "fail" and "2 chunks in the catalog, 1 vectors in embedded" in result.saw
        assert not (loaded.data_dir / "knowledge" / "catalog.sqlite").exists()
    finally:
        engine.dispose()


def test_catalog_pointing_at_a_store_that_does_not_hold_the_vectors_fails(lab_config):
    loaded = lab_config({"knowledge": {"stores": {"qdrant": {"path": ":memory:"}}}})
    c = _collection(loaded.data_dir, 8, store="qdrant", chunks=2)
    store = EmbeddedStore(loaded.data_dir / "knowledge" / "embedded")
    store.create(c.namespace, 8)
    store.upsert(c.namespace, [1, 2], _vectors(2, 8))  # a migration to qdrant switched the catalog first
    result = run_check(loaded, "vector-migration")
    assert result.status == "fail"
    assert "catalog says qdrant" in result.saw and "embedded (2 vectors)" in result.saw


def test_qdrant_server_stopped_wrong_key_and_running(lab_config, fake_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    loaded = lab_config({"knowledge": {"stores": {"qdrant": {"url": url, "api_key": "qk-1"}}}})
    result = run_check(loaded, "qdrant")
    assert result.status == "fail" and "connection refused" in result.saw

    server = fake_server(qdrant_app(api_key="qk-other"), port)
    result = run_check(loaded, "qdrant")
    assert result.status == "fail" and "rejects the API key" in result.saw
    server.stop()

    fake_server(qdrant_app(api_key="qk-1"), port)
    result = run_check(loaded, "qdrant")
    assert result.status == "pass" and "1 collection" in result.saw


def test_qdrant_check_skips_without_a_qdrant(lab_config):
    assert run_check(lab_config(), "qdrant").status == "skip"
    assert run_check(load_config(None, lab_config().data_dir), "embedding-dimension").status == "skip"


def test_collection_in_an_unreachable_qdrant_is_reported_quickly(lab_config):
    url = f"http://127.0.0.1:{free_port()}"
    loaded = lab_config({"knowledge": {"stores": {"qdrant": {"url": url}}}})
    _collection(loaded.data_dir, 8, store="qdrant")
    t0 = time.monotonic()
    result = run_check(loaded, "embedding-dimension")
    assert result.status == "warn" and "qdrant store unavailable" in result.saw
    assert time.monotonic() - t0 < 5
