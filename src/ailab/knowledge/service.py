"""The knowledge pillar's one door: collections, ingestion, hybrid search, answers, store migration.

Built once per running lab by the server (`KnowledgeService.build`, from the parts the server made: the
gateway's API and router, the database, metrics), or by the CLI on a lab it starts in process, so embedding
and chat calls always go through the gateway's router and into the ledger.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ailab.access import Principal, decide
from ailab.config import KnowledgeSettings
from ailab.knowledge import uploads
from ailab.knowledge.catalog import ChunkRow, Collection, KnowledgeCatalog, open_catalog
from ailab.knowledge.filters import FilterError, check_filters
from ailab.knowledge.finder import FindOptions
from ailab.knowledge.fusion import RankedDocument, fuse_documents, pick_chunks, rrf
from ailab.knowledge.gateway_client import GatewayClient, ModelCallError
from ailab.knowledge.ingest import Ingestor, IngestReport, Progress
from ailab.knowledge.local_provider import BUILTIN_GROUP, ensure_builtin
from ailab.knowledge.sandbox import Limits, ParsePool
from ailab.knowledge.stores import StoreError, VectorStore, open_store
from ailab.knowledge.worker import warm_up
from ailab.observability import KnowledgeMetrics

if TYPE_CHECKING:
    import aiohttp
    from sqlalchemy import Engine

    from ailab.gateway import GatewayAPI, Router

CHUNKS_PER_DOCUMENT = 1  # chunks a ranked document brings to the results (more when documents run out)


class KnowledgeError(ValueError):
    """A request the knowledge service refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Hit:
    chunk_id: int
    collection: str
    score: float
    dense: float | None
    sparse: float | None
    text: str
    meta: dict[str, Any]
    rerank_score: float | None = None  # the rerank model's relevance, when knowledge.rerank_model reordered

    def public(self) -> dict[str, Any]:
        m = self.meta
        out = {
            "chunk_id": self.chunk_id,
            "collection": self.collection,
            "score": round(self.score, 6),
            "dense_score": None if self.dense is None else round(self.dense, 6),
            "sparse_score": None if self.sparse is None else round(self.sparse, 6),
            "text": self.text,
            "source": m.get("source"),
            "title": m.get("title"),
            "page": m.get("page"),
            "heading": m.get("heading") or [],
            "document_id": m.get("document_id"),
            "content_hash": m.get("content_hash"),
            "mtime": m.get("mtime"),
        }
        if self.rerank_score is not None:
            out["rerank_score"] = round(self.rerank_score, 6)
        return out


Reranker = Callable[[str, list[Hit]], list[Hit]]


class KnowledgeService:
    def __init__(
        self,
        data_dir: Path,
        settings: KnowledgeSettings,
        gateway: GatewayClient,
        metrics: KnowledgeMetrics,
        catalog: KnowledgeCatalog | None = None,
    ) -> None:
        self.root = data_dir / "knowledge"
        self.settings = settings
        self.gateway = gateway
        self.metrics = metrics
        # The lab's PostgreSQL database when it has one (replicas share it), else the data dir's SQLite file.
        self.catalog: KnowledgeCatalog = catalog or open_catalog(self.root)
        self.reranker: Reranker | None = None  # an optional hook: (query, hits) → reordered hits
        self._stores: dict[str, VectorStore] = {}
        self._lock = threading.Lock()
        self._parsers: ParsePool | None = None

    @classmethod
    def build(
        cls,
        data_dir: Path,
        raw_settings: Any,
        api: GatewayAPI,
        metrics: KnowledgeMetrics,
        engine: Engine | None,
        router: Router | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> KnowledgeService:
        """The service of a running lab, from the parts its server built (`ailab.knowledge` settings as
        written in the config; the built-in embedder is added to `router` when they name it)."""
        settings = KnowledgeSettings.model_validate(raw_settings)
        if settings.embedding_model == BUILTIN_GROUP and router and session:
            ensure_builtin(router, session)
        catalog = open_catalog(data_dir / "knowledge", engine)
        return cls(data_dir, settings, GatewayClient(api), metrics, catalog)

    def parsers(self) -> ParsePool:
        """The worker processes that parse documents (started on first use, shared by every ingest)."""
        with self._lock:
            if self._parsers is None:
                self._parsers = ParsePool(self.settings.parse_workers, self.parse_limits(), warm_up)
            return self._parsers

    def parse_limits(self) -> Limits:
        s = self.settings
        return Limits(seconds=s.parse_timeout, memory_mb=s.parse_memory_mb)

    def close(self) -> None:
        with self._lock:
            if self._parsers is not None:
                self._parsers.close()
                self._parsers = None
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    def store(self, kind: str) -> VectorStore:
        with self._lock:
            if kind not in self._stores:
                self._stores[kind] = open_store(kind, self.root, self.settings.stores.get(kind))
            return self._stores[kind]

    # -- collections ------------------------------------------------------------------------------

    async def create_collection(
        self,
        principal: Principal,
        name: str,
        *,
        project_id: str | None = None,
        store: str | None = None,
        embedding_model: str | None = None,
        dimension: int | None = None,
        description: str | None = None,
    ) -> Collection:
        if (
            not name
            or len(name) > 100
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise KnowledgeError("name: use letters, digits, '-', '_' and '.' (at most 100 characters)")
        if self.catalog.collection(name) is not None:
            raise KnowledgeError(f"collection {name!r} already exists", 409, "conflict")
        model = embedding_model or self.settings.embedding_model
        probe = await self._embed_raw(principal, model, ["dimension probe"])
        actual = int(probe.shape[1])
        if dimension is not None and dimension != actual:
            raise KnowledgeError(
                f"dimension mismatch: embedding model {model!r} produces {actual}-dimensional vectors, "
                f"not {dimension}",
                code="dimension_mismatch",
            )
        coll = Collection(
            id=os.urandom(8).hex(),
            name=name,
            project_id=project_id,
            store=store or self.settings.store,
            embedding_model=model,
            dimension=actual,
            chunk_tokens=self.settings.chunk_tokens,
            overlap=self.settings.overlap,
            created_ms=int(time.time() * 1000),
            created_by=principal.name,
            description=description,
        )
        try:
            await asyncio.to_thread(self.store(coll.store).create, coll.namespace, actual)
        except StoreError as exc:
            raise KnowledgeError(str(exc)) from None
        try:
            self.catalog.add_collection(coll)
        except KeyError:  # another replica created it meanwhile
            await asyncio.to_thread(self.store(coll.store).drop, coll.namespace)
            raise KnowledgeError(f"collection {name!r} already exists", 409, "conflict") from None
        return coll

    def get(self, name: str) -> Collection:
        coll = self.catalog.collection(name)
        if coll is None:
            raise KnowledgeError(missing_collection(name), 404, "not_found")
        return coll

    def visible(self, principal: Principal, permission: str = "knowledge.use") -> list[Collection]:
        return [
            c for c in self.catalog.collections() if decide(principal, permission, project_id=c.project_id)
        ]

    def describe(self, coll: Collection) -> dict[str, Any]:
        return {**coll.public(), **self.catalog.stats(coll.id)}

    async def delete_collection(self, coll: Collection) -> None:
        await asyncio.to_thread(self.store(coll.store).drop, coll.namespace)
        self.catalog.drop_collection(coll.id)
        uploads.remove_collection_uploads(self.root, coll.name)

    def delete_document(self, coll: Collection, document_id: str) -> bool:
        with self.catalog.connect() as db:
            source = self.catalog.source_of(db, document_id)
            ids = self.catalog.delete_document(db, document_id)
            if source is None and not ids:
                return False
            self.store(coll.store).delete(coll.namespace, ids)
        if source is not None:
            uploads.remove_upload(self.root, coll.name, source)
        return True

    # -- ingestion and migration ----------------------------------------------------------------

    async def ingest_paths(
        self,
        principal: Principal,
        coll: Collection,
        paths: list[Path],
        *,
        prune: bool = False,
        progress: Progress | None = None,
        workers: int | None = None,
        find: FindOptions | None = None,
        index_now: bool = False,
        on_index: Callable[[], None] | None = None,
    ) -> IngestReport:
        """Ingest files and folders. `index_now`: the search index catches up before this returns (for a
        process that ends next; `on_index` is called as that begins, if there is anything to do); else in
        the background."""
        return await Ingestor(self, coll, principal).run_paths(
            paths, prune, progress, workers, find, index_now, on_index
        )

    async def ingest_files(
        self, principal: Principal, coll: Collection, items: list[uploads.Incoming]
    ) -> IngestReport:
        """Ingest uploads spooled to disk; the caller keeps or removes the files."""
        return await Ingestor(self, coll, principal).run_files(items)

    async def ingest_bytes(
        self, principal: Principal, coll: Collection, items: list[tuple[str, bytes]]
    ) -> IngestReport:
        with uploads.incoming_dir(self.root) as folder:
            spooled = [uploads.spool(folder, i, name, data) for i, (name, data) in enumerate(items)]
            return await self.ingest_files(principal, coll, spooled)

    def migrate(self, coll: Collection, to_store: str) -> int:
        """Copy a collection's vectors to another store (no re-embedding), switch it over, drop the old."""
        if coll.store == to_store:
            raise KnowledgeError(f"collection {coll.name!r} is already in the {to_store} store")
        source, target = self.store(coll.store), self.store(to_store)
        target.drop(coll.namespace)
        target.create(coll.namespace, coll.dimension)
        moved = 0
        for ids, vectors in source.export(coll.namespace):
            target.upsert(coll.namespace, ids, vectors)
            moved += len(ids)
        if target.count(coll.namespace) != source.count(coll.namespace):
            target.drop(coll.namespace)
            raise KnowledgeError(
                f"migration of {coll.name!r} did not copy every vector; nothing changed", 500
            )
        self.catalog.set_store(coll.id, to_store)
        source.drop(coll.namespace)
        return moved

    # -- embedding --------------------------------------------------------------------------------

    async def _embed_raw(self, principal: Principal, model: str, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            vectors = await self.gateway.embed(principal, model, texts)
        except ModelCallError as exc:
            raise KnowledgeError(str(exc), exc.status, exc.code) from None
        self.metrics.embed_latency.labels(model).observe(time.perf_counter() - t0)
        return vectors

    async def embed(self, principal: Principal, coll: Collection, texts: list[str]) -> np.ndarray:
        vectors = await self._embed_raw(principal, coll.embedding_model, texts)
        if vectors.shape[1] != coll.dimension:
            raise KnowledgeError(
                f"dimension mismatch: collection {coll.name!r} holds {coll.dimension}-dimensional vectors "
                f"but model {coll.embedding_model!r} now returns {vectors.shape[1]}: re-create it",
                code="dimension_mismatch",
            )
        return vectors

    # -- search -----------------------------------------------------------------------------------

    async def search(
        self,
        principal: Principal,
        colls: list[Collection],
        query: str,
        k: int | None = None,
        filters: dict[str, Any] | None = None,
        mode: str = "hybrid",
        *,
        group: str = "document",
        per_document: int = CHUNKS_PER_DOCUMENT,
        rerank: bool | None = None,
    ) -> list[Hit]:
        """The `k` best chunks for `query`. `group="document"` (the default) ranks documents (a document
        counts once, at its best chunk, in the dense and in the sparse ranking, then RRF) and returns each
        ranked document's best `per_document` chunks (more when there are fewer documents than `k`);
        `group="chunk"` ranks chunks alone (several chunks of one document may fill the results).
        `rerank`: None applies the service's reranker (the hook, and `knowledge.rerank_model` through the
        gateway's rerank cycle) when it has one; False skips it (apps choose). Reranked hits carry
        `rerank_score`."""
        if mode not in ("hybrid", "dense", "sparse"):
            raise KnowledgeError("mode: choose hybrid, dense or sparse")
        if group not in ("document", "chunk"):
            raise KnowledgeError("group: choose document or chunk")
        try:
            filters = check_filters(filters)
        except FilterError as exc:
            raise KnowledgeError(str(exc)) from None
        k = k or self.settings.top_k
        model = self.settings.rerank_model if rerank is not False else None
        want = max(k, self.settings.rerank_candidates) if model else k  # the candidates to rerank
        ranked: list[list[RankedDocument]] = []
        for coll in colls:
            vec = None if mode == "sparse" else (await self.embed(principal, coll, [query]))[0]
            ranked.append(await asyncio.to_thread(self._rank, coll, query, vec, want, filters, mode, group))
        hits = self._hits(query, ranked, want, max(1, per_document), rerank is not False)
        if model:
            hits = await self._rerank(principal, model, query, hits)
        return hits[:k]

    async def _rerank(self, principal: Principal, model: str, query: str, hits: list[Hit]) -> list[Hit]:
        """The candidates reordered by the rerank model group (routed, budgeted and ledgered as `rerank`);
        candidates it gave no score come last, in their fused order."""
        if not hits:
            return hits
        try:
            results = await self.gateway.rerank(principal, model, query, [h.text for h in hits])
        except ModelCallError as exc:
            raise KnowledgeError(str(exc), exc.status, exc.code) from None
        out: list[Hit] = []
        for r in results:
            hit = hits[r["index"]]
            if hit.rerank_score is None:
                hit.rerank_score = float(r["relevance_score"])
                out.append(hit)
        return out + [h for h in hits if h.rerank_score is None]

    def _rank(
        self,
        coll: Collection,
        query: str,
        vec: np.ndarray | None,
        k: int,
        filters: dict[str, Any] | None,
        mode: str,
        group: str,
    ) -> list[RankedDocument]:
        """One collection's ranking: documents (for `group="chunk"`, one pseudo-document per chunk), keyed by
        (collection name, document id), each with its chunks best first."""
        t0 = time.perf_counter()
        n = max(k * 4, 40)
        allowed = self.catalog.filter_ids(coll.id, filters) if filters else None
        dense = self.store(coll.store).search(coll.namespace, vec, n, allowed) if vec is not None else []
        sparse = self.catalog.bm25(coll.id, query, n, allowed) if mode != "dense" else []
        if group == "chunk":
            out = [RankedDocument(cid, score, [(cid, score)]) for cid, score in rrf([dense, sparse])]
        else:
            document_of = self.catalog.document_of([cid for cid, _ in [*dense, *sparse]])
            out = fuse_documents([dense, sparse], document_of)
        self.metrics.search_latency.labels(coll.store).observe(time.perf_counter() - t0)
        d, s = dict(dense), dict(sparse)
        for doc in out:
            doc.key = (coll.name, doc.key)
            doc.chunks = [Ranked(coll.name, cid, sc, d.get(cid), s.get(cid)) for cid, sc in doc.chunks]
        return out

    def _hits(
        self,
        query: str,
        ranked: list[list[RankedDocument]],
        k: int,
        per_document: int,
        rerank: bool = True,
    ) -> list[Hit]:
        reranker = self.reranker if rerank else None
        if len(ranked) == 1:
            order = ranked[0]
        else:  # several collections: fuse their document rankings the same way
            by_key = {d.key: d for ds in ranked for d in ds}
            fused = rrf([[(d.key, d.score) for d in ds] for ds in ranked])
            order = [RankedDocument(key, score, by_key[key].chunks) for key, score in fused]
        want = k * 3 if reranker else k
        picked: list[tuple[Any, Ranked]] = pick_chunks(order, want, per_document)
        doc_score = {d.key: d.score for d in order}
        rows: dict[int, ChunkRow] = self.catalog.chunks([r.chunk_id for _, r in picked])
        hits = [
            Hit(r.chunk_id, r.collection, doc_score[key], r.dense, r.sparse, row.text, row.meta)
            for key, r in picked
            if (row := rows.get(r.chunk_id)) is not None
        ]
        if reranker is not None:
            hits = reranker(query, hits)
        return hits


@dataclass
class Ranked:
    collection: str
    chunk_id: int
    score: float
    dense: float | None
    sparse: float | None


def missing_collection(name: str) -> str:
    """The one answer for a collection that is missing or hidden from the caller (they must not differ)."""
    return (
        f"collection {name!r} does not exist; create it with POST /v1/knowledge/collections "
        "or `ailab ingest -c NAME PATH`"
    )
