"""Knowledge checks: embedding dimensions, the Qdrant server, and collections left behind by a migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from ailab.knowledge import (
    CATALOG_FILE,
    Collection,
    KnowledgeCatalog,
    StoreError,
    VectorStore,
    is_postgres,
    open_catalog,
    open_store,
)
from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn, worst
from ailab.ops.doctor.context import DoctorContext, http_problem

STORE_ERRORS = (StoreError, OSError, RuntimeError, ValueError)  # what opening or asking a store raises


def knowledge_root(ctx: DoctorContext) -> Path:
    return ctx.data_dir / "knowledge"


def catalog_of(ctx: DoctorContext) -> KnowledgeCatalog | None:
    """The lab's catalog (in its PostgreSQL database, or the data dir's SQLite file); None when knowledge
    was never used or the database cannot be reached (the database check says why). Nothing is created."""
    engine = ctx.engine()
    if is_postgres(engine):
        assert engine is not None
        try:
            if not inspect(engine).has_table("knowledge_collections"):
                return None
        except SQLAlchemyError:
            return None
        return open_catalog(knowledge_root(ctx), engine)
    if not (knowledge_root(ctx) / CATALOG_FILE).is_file():
        return None
    return open_catalog(knowledge_root(ctx))


def collections(ctx: DoctorContext) -> list[Collection] | None:
    """The catalog's collections; None when knowledge was never used (the catalog is not created here)."""
    catalog = catalog_of(ctx)
    return None if catalog is None else catalog.collections()


def store_of(ctx: DoctorContext, kind: str) -> VectorStore | str:
    """The store of that kind (opened once per run), or why it cannot be opened."""

    def open_it() -> VectorStore | str:
        opts = ctx.config.knowledge.stores.get(kind) or {}
        if kind == "qdrant" and opts.get("url"):
            try:  # a quick probe first: the client's own timeouts are long
                ctx.http.get(f"{str(opts['url']).rstrip('/')}/readyz")
            except httpx.HTTPError as exc:
                return f"qdrant store unavailable: {http_problem(exc)} (see the qdrant check)"
        try:
            store = open_store(kind, knowledge_root(ctx), opts)
        except STORE_ERRORS as exc:
            return f"{kind} store unavailable: {exc}"
        ctx.on_close(store.close)
        return store

    return ctx.once(f"store:{kind}", open_it)


def store_dimension(store: VectorStore, namespace: str) -> int | None:
    """The dimension of a collection's vectors in a store; None when it holds no vector yet."""
    declared = getattr(store, "dimension", None)
    if callable(declared):
        return int(declared(namespace))
    for _, vectors in store.export(namespace, batch=1):
        return int(vectors.shape[1])
    return None


def embedder_dimension(ctx: DoctorContext, model: str) -> int | str:
    """What the embedding model returns now (through the running lab), or why that is unknown."""
    url = ctx.lab_url
    if url is None:
        return "lab not running"
    try:
        resp = ctx.http.post(
            f"{url}/v1/embeddings", json={"model": model, "input": "ailab doctor"}, headers=ctx.auth_headers()
        )
    except httpx.HTTPError as exc:
        return f"lab {http_problem(exc)}"
    if resp.status_code != 200:
        return f"embedding with {model!r} failed (HTTP {resp.status_code})"
    try:
        return len(resp.json()["data"][0]["embedding"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "the embedding answer has no vector"


@check("embedding-dimension", "Collections, stores and embedder agree on dimensions", "embedding-dimension")
def dimension_check(ctx: DoctorContext) -> Outcome:
    colls = collections(ctx)
    if not colls:
        return skip("no knowledge collections")
    outcomes: list[Outcome] = []
    live: dict[str, int | str] = {}
    for c in colls:
        store = store_of(ctx, c.store)
        if isinstance(store, str):
            outcomes.append(warn(f"{c.name}: {store}"))
            continue
        try:
            actual = store_dimension(store, c.namespace)
        except STORE_ERRORS as exc:
            outcomes.append(warn(f"{c.name}: cannot read the {c.store} store ({exc})"))
            continue
        if actual is not None and actual != c.dimension:
            outcomes.append(
                fail(f"{c.name}: catalog says {c.dimension} dimensions, {c.store} store holds {actual}")
            )
            continue
        if c.embedding_model not in live:
            live[c.embedding_model] = embedder_dimension(ctx, c.embedding_model)
        now = live[c.embedding_model]
        if isinstance(now, int) and now != c.dimension:
            outcomes.append(
                fail(
                    f"{c.name}: built with {c.dimension}-dim vectors, {c.embedding_model!r} now returns {now}"
                )
            )
        else:
            outcomes.append(passed(f"{c.name}: {c.dimension}"))
    bad = [o for o in outcomes if o.status != "pass"]
    unchecked = sorted({m for m, v in live.items() if isinstance(v, str)})
    note = f" (embedder not checked for {', '.join(unchecked)}: {live[unchecked[0]]})" if unchecked else ""
    saw = "; ".join(o.saw for o in bad) if bad else f"{len(colls)} collection(s) consistent{note}"
    return worst(
        outcomes,
        saw,
        "re-embed: create a new collection with the current embedding model and ingest again, or point "
        "knowledge.embedding_model back at the model the collection was built with",
    )


# -- Qdrant ---------------------------------------------------------------------------------------------


def qdrant_target(ctx: DoctorContext) -> tuple[str, str | None] | None:
    opts: dict[str, Any] = ctx.config.knowledge.stores.get("qdrant") or {}
    if opts.get("url"):
        return str(opts["url"]).rstrip("/"), opts.get("api_key")
    if "qdrant" in ctx.stack_components():
        return ctx.component_url("qdrant"), None
    return None


@check("qdrant", "The Qdrant server answers and accepts its key", "qdrant-connection-failed")
def qdrant_check(ctx: DoctorContext) -> Outcome:
    target = qdrant_target(ctx)
    if target is None:
        return skip("no Qdrant server configured (knowledge.stores.qdrant.url) or installed")
    url, key = target
    headers = {"api-key": key} if key else {}
    try:
        ready = ctx.http.get(f"{url}/readyz", headers=headers)
        listing = ctx.http.get(f"{url}/collections", headers=headers)
    except httpx.HTTPError as exc:
        return fail(
            f"Qdrant at {url}: {http_problem(exc)}",
            "start Qdrant (`ailab up` for the stack, or `docker compose up -d qdrant`) or fix "
            "knowledge.stores.qdrant.url",
        )
    if listing.status_code in (401, 403):
        return fail(
            f"Qdrant at {url} rejects the API key (HTTP {listing.status_code})",
            "set knowledge.stores.qdrant.api_key to the server's QDRANT__SERVICE__API_KEY",
        )
    if ready.status_code != 200 or listing.status_code != 200:
        return fail(f"Qdrant at {url}: /readyz {ready.status_code}, /collections {listing.status_code}")
    n = len(((listing.json().get("result") or {}).get("collections")) or [])
    return passed(f"Qdrant at {url} is ready ({n} collection(s))")


# -- vector DB migration problems -----------------------------------------------------------------------


def _where_else(ctx: DoctorContext, c: Collection) -> list[str]:
    """Other stores that hold the collection's namespace (left there by an interrupted migration)."""
    found = []
    for kind in ("embedded", "qdrant", "milvus"):
        if kind == c.store or not _store_present(ctx, kind):
            continue
        store = store_of(ctx, kind)
        if isinstance(store, str):
            continue
        try:
            found.append(f"{kind} ({store.count(c.namespace)} vectors)")
        except STORE_ERRORS:
            continue
    return found


def _store_present(ctx: DoctorContext, kind: str) -> bool:
    root = knowledge_root(ctx)
    opts = ctx.config.knowledge.stores.get(kind) or {}
    if kind == "embedded":
        return (root / "embedded").is_dir()
    if opts.get("url"):
        return True
    return (root / ("qdrant" if kind == "qdrant" else "milvus.db")).exists()


@check("vector-migration", "Each collection's vectors are where the catalog says", "vector-db-migration")
def migration_check(ctx: DoctorContext) -> Outcome:
    colls = collections(ctx)
    if not colls:
        return skip("no knowledge collections")
    catalog = catalog_of(ctx)
    assert catalog is not None  # it listed the collections
    outcomes: list[Outcome] = []
    for c in colls:
        chunks = catalog.stats(c.id)["chunks"]
        store = store_of(ctx, c.store)
        if isinstance(store, str):
            outcomes.append(warn(f"{c.name}: {store}"))
            continue
        try:
            count = store.count(c.namespace)
        except StoreError:
            elsewhere = _where_else(ctx, c)
            there = f"; its vectors are in {', '.join(elsewhere)}" if elsewhere else ""
            outcomes.append(
                fail(f"{c.name}: the catalog says {c.store} but that store has no such collection{there}")
            )
            continue
        except STORE_ERRORS as exc:
            outcomes.append(warn(f"{c.name}: cannot count in the {c.store} store ({exc})"))
            continue
        if count != chunks:
            outcomes.append(fail(f"{c.name}: {chunks} chunks in the catalog, {count} vectors in {c.store}"))
        else:
            outcomes.append(passed(f"{c.name}: {count} vectors in {c.store}"))
    bad = [o for o in outcomes if o.status != "pass"]
    saw = "; ".join(o.saw for o in bad) if bad else f"{len(colls)} collection(s): vectors match the catalog"
    return worst(
        outcomes,
        saw,
        "re-run `ailab knowledge migrate --from OLD --to NEW --collection NAME` (it copies, verifies, "
        "then switches), or re-ingest the collection's documents",
    )


CHECKS = [dimension_check, qdrant_check, migration_check]
