"""The ingestion pipeline: find files → (skip unchanged) → parse and chunk in a worker pool → embed in
batches through the gateway → write each document atomically (catalog rows, BM25 index and vectors
together, or nothing). Parsing of the next files overlaps with embedding of the previous ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ailab.knowledge.finder import FindOptions, find_files
from ailab.knowledge.sandbox import InlinePool, JobFailed, ParsePool
from ailab.knowledge.uploads import Incoming
from ailab.knowledge.worker import Prepared, prepare_path, warm_up

if TYPE_CHECKING:
    from ailab.access import Principal
    from ailab.knowledge.catalog import Collection
    from ailab.knowledge.service import KnowledgeService

Progress = Callable[[int, int], None]
log = logging.getLogger("ailab.knowledge")
EMBED_BATCH = 64
IN_FLIGHT = 16


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # not read, on purpose: {source, reason}
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "chunks": self.chunks,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def document_id(collection_id: str, source: str) -> str:
    return hashlib.sha256(f"{collection_id}\0{source}".encode()).hexdigest()[:24]


class Ingestor:
    def __init__(self, service: KnowledgeService, coll: Collection, principal: Principal) -> None:
        self.service = service
        self.coll = coll
        self.principal = principal
        self.report = IngestReport()
        self.known = {d["source"]: d for d in service.catalog.documents(coll.id)}
        self.max_bytes = int(service.settings.max_file_mb * 2**20)

    async def run_paths(
        self,
        paths: list[Path],
        prune: bool = False,
        progress: Progress | None = None,
        workers: int | None = None,
        find: FindOptions | None = None,
        index_now: bool = False,
        on_index: Callable[[], None] | None = None,
    ) -> IngestReport:
        """`index_now`: the search index catches up before this returns; `on_index` is called as that
        begins, when there is anything to catch up (it takes minutes at a million chunks)."""
        t0 = time.perf_counter()
        found = await asyncio.to_thread(find_files, paths, find)
        self.report.failed.extend(found.missing)
        self.report.skipped.extend(found.skipped)
        files = found.files
        todo: list[tuple[str, float]] = []
        for f in files:
            source = str(f)
            known = self.known.get(source)
            if known is not None and await asyncio.to_thread(_same_content, f, known["content_hash"]):
                self.report.unchanged += 1
                continue
            todo.append((source, f.stat().st_mtime))
        if prune:
            self._prune(paths, {str(f) for f in files})
        pool = self._pool(workers)
        try:
            jobs = (self._prepare(pool, s, m) for s, m in todo)
            await self._consume(jobs, len(todo), progress)
        finally:
            if workers is not None:  # a pool of this run's own
                pool.close()
        await self._refresh_index(index_now, on_index)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    async def run_files(self, items: list[Incoming]) -> IngestReport:
        """Ingest uploads spooled to disk (each known by its upload name)."""
        t0 = time.perf_counter()
        jobs: list[Any] = []
        pool = self.service.parsers()
        for item in items:
            known = self.known.get(item.name)
            if known is not None and known["content_hash"] == item.sha256:
                self.report.unchanged += 1
                continue
            jobs.append(self._prepare(pool, str(item.path), None, item.name))
        await self._consume(iter(jobs), len(jobs), None)
        await self._refresh_index(False)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    async def _refresh_index(self, now: bool, on_build: Callable[[], None] | None = None) -> None:
        """The catalog's search index catches up with this ingest now (`now`: before returning, for a
        process that ends next), not at the first search. A failure there loses nothing: searches catch
        the index up themselves."""
        try:
            await asyncio.to_thread(self.service.catalog.refresh_index, self.coll.id, now, on_build)
        except Exception:
            log.exception("knowledge: refreshing the search index of %s failed", self.coll.name)

    def _pool(self, workers: int | None) -> ParsePool | InlinePool:
        """The service's parser processes, or for `workers` given: 0, a thread here; N, N processes."""
        if workers is None:
            return self.service.parsers()
        if workers == 0:
            return InlinePool()
        return ParsePool(workers, self.service.parse_limits(), warm_up)

    async def _prepare(
        self, pool: ParsePool | InlinePool, path: str, mtime: float | None, name: str | None = None
    ) -> Prepared:
        cfg = (self.coll.chunk_tokens, self.coll.overlap)
        try:
            prepared: Prepared = await pool.run(prepare_path, path, mtime, *cfg, name, self.max_bytes)
        except JobFailed as exc:
            source = name or path
            return Prepared(source, source, "", 0, mtime, error=str(exc))
        return prepared

    async def _consume(self, jobs: Iterable[Any], total: int, progress: Progress | None) -> None:
        """Keep IN_FLIGHT parse jobs running, and embed whole documents in batches of ~EMBED_BATCH chunks."""
        it = iter(jobs)
        pending = [asyncio.ensure_future(j) for j in _take(it, IN_FLIGHT)]
        batch: list[Prepared] = []
        done = 0
        while pending:
            prepared: Prepared = await pending.pop(0)
            pending.extend(asyncio.ensure_future(j) for j in _take(it, 1))
            if prepared.error:
                self._failed(prepared.source, prepared.error)
            else:
                batch.append(prepared)
            if sum(len(p.chunks) for p in batch) >= EMBED_BATCH or not pending:
                await self._embed_and_write(batch)
                done += len(batch)
                batch = []
            if progress is not None:
                progress(done + len(self.report.failed), total)

    async def _embed_and_write(self, docs: list[Prepared]) -> None:
        if not docs:
            return
        texts = [c.embed_text(d.title) for d in docs for c in d.chunks]
        try:
            vectors = await self.service.embed(self.principal, self.coll, texts)
        except Exception as exc:
            for d in docs:
                self._failed(d.source, f"embedding failed: {exc}")
            return
        at = 0
        for d in docs:
            n = len(d.chunks)
            try:
                await asyncio.to_thread(self._write, d, vectors[at : at + n])
            except Exception as exc:
                self._failed(d.source, f"store write failed: {exc}")
            at += n

    def _write(self, d: Prepared, vectors: np.ndarray) -> None:
        svc, coll = self.service, self.coll
        doc_id = document_id(coll.id, d.source)
        doc = {
            "id": doc_id,
            "collection_id": coll.id,
            "source": d.source,
            "title": d.title,
            "kind": d.kind,
            "content_hash": d.content_hash,
            "mtime": d.mtime,
            "size": d.size,
        }
        rows = [(c.text, c.ord, " › ".join(c.heading), _meta(d, c, doc_id)) for c in d.chunks]
        store = svc.store(coll.store)
        with svc.catalog.connect() as db:
            old = svc.catalog.delete_document(db, doc_id)
            new = svc.catalog.insert_document(db, doc, rows)
            try:
                store.upsert(coll.namespace, new, vectors)
                store.delete(coll.namespace, old)
            except BaseException:
                store.delete(coll.namespace, new)  # the catalog rolls back; leave no vectors behind
                raise
        updated = d.source in self.known
        self.report.updated += updated
        self.report.added += not updated
        self.report.chunks += len(new)
        m = svc.metrics
        m.documents.labels(coll.name).inc()
        m.chunks.labels(coll.name).inc(len(new))

    def _failed(self, source: str, reason: str) -> None:
        self.report.failed.append({"source": source, "reason": reason})
        self.service.metrics.errors.labels(self.coll.name).inc()

    def _prune(self, roots: list[Path], present: set[str]) -> None:
        """Remove documents under the given folders whose files are gone."""
        prefixes = [str(p.resolve()) + os.sep for p in roots if p.is_dir()]
        gone = [s for s in self.known if s not in present and any(s.startswith(pre) for pre in prefixes)]
        for source in gone:
            self.service.delete_document(self.coll, self.known[source]["id"])
            self.report.removed += 1


def _meta(d: Prepared, c: Any, doc_id: str) -> dict[str, Any]:
    return {
        "source": d.source,
        "title": d.title,
        "kind": d.kind,
        "page": c.page,
        "heading": c.heading,
        "document_id": doc_id,
        "content_hash": d.content_hash,
        "chunk_hash": c.hash,
        "mtime": d.mtime,
        "ord": c.ord,
    }


def _same_content(path: Path, known_hash: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):  # in slices: the file may be of any size
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == known_hash


def _take(it: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


__all__ = ["IngestReport", "Ingestor", "document_id"]
