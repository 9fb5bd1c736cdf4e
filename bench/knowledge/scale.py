"""The embedded store at N chunks (issue 19): build time (appends + incremental HNSW), index memory and
files, search p50/p95 and recall@10 against exact, and search + prompt building through the service
(dense + BM25, fusion, chunk fetch, prompt) on a catalog of N chunks; Qdrant local mode and Milvus Lite
beside it on the same vectors where they finish within `--cap` seconds.

Vectors are synthetic (unit vectors around random topic centres, like real embeddings crowd in topics);
chunk texts are Zipf-distributed words. Run under `nice -n 19` on a shared machine.

    python -m bench.knowledge.scale [--n 100000] [--queries 300] [--cap 600] [--peers milvus,qdrant]

A built store can be kept and measured again (say under an exclusive benchmark slot, after a niced build):

    python -m bench.knowledge.scale --n 1000000 --keep .bench/scale-1m --build-only --peers ''
    python -m bench.knowledge.scale --n 1000000 --reuse .bench/scale-1m --ef-search 96,200 --peers ''

The data dir keeps `truth.npy` (exact top 10 of the queries, by row) and `build.json` next to it, so a
re-measurement needs neither the exact search nor the build again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.knowledge.ann_choice import clustered, exact, rss_mb
from bench.knowledge.retrieval import DIM, percentiles, words

NS = "c_bench"


def data(n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((max(100, n // 100), DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    return clustered(rng, n, centers), clustered(rng, n_queries, centers)


def fill_catalog(svc: Any, coll: Any, n: int, text_words: int, per_doc: int = 10) -> list[int]:
    rng = np.random.default_rng(11)
    ids: list[int] = []
    for start in range(0, n, 5000):
        with svc.catalog.connect() as db:
            for first in range(start, min(start + 5000, n), per_doc):
                count = min(per_doc, n - first)
                source = f"doc{first // per_doc}.html"
                rows = [
                    (" ".join(words(rng, text_words)), i, "Heading", {"source": source, "title": "T"})
                    for i in range(count)
                ]
                doc = {
                    "id": f"d{first}",
                    "collection_id": coll.id,
                    "source": source,
                    "title": "T",
                    "kind": "html",
                    "content_hash": "x",
                    "mtime": 0.0,
                    "size": 0,
                }
                ids += svc.catalog.insert_document(db, doc, rows)
    return ids


def build(
    tmp: Path, n: int, vectors: np.ndarray, text_words: int, opts: dict[str, Any]
) -> tuple[dict[str, Any], list[int]]:
    from ailab.config.models import KnowledgeSettings
    from ailab.knowledge.catalog import Collection
    from ailab.knowledge.service import KnowledgeService
    from ailab.observability.metrics import Metrics

    settings = KnowledgeSettings(stores={"embedded": opts})
    svc = KnowledgeService(tmp, settings, None, Metrics().knowledge)  # type: ignore[arg-type]
    coll = Collection("bench", "bench", None, "embedded", "synthetic", DIM, 200, 32, 0, "bench")
    svc.catalog.add_collection(coll)
    t0 = time.perf_counter()
    ids = fill_catalog(svc, coll, n, text_words)
    catalog_s = time.perf_counter() - t0
    print(f"catalog: {n} chunks in {catalog_s:.0f} s", flush=True)
    store = svc.store("embedded")
    store.create(coll.namespace, DIM)
    t0 = time.perf_counter()
    for lo in range(0, n, 5000):
        store.upsert(coll.namespace, ids[lo : lo + 5000], vectors[lo : lo + 5000])
        if (lo + 5000) % 100_000 == 0:
            print(f"built {lo + 5000} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    svc.close()  # saves the index
    build_s = time.perf_counter() - t0
    d = tmp / "knowledge" / "embedded" / coll.namespace
    sizes = {p.name: p.stat().st_size for p in d.iterdir() if p.is_file()}
    return {
        "catalog_fill_s": round(catalog_s, 1),
        "store_build_s": round(build_s, 1),
        "files_mb": {k: round(v / 2**20, 1) for k, v in sizes.items() if v > 2**20},
        "bytes_per_chunk_on_disk": round(sum(sizes.values()) / n),
    }, ids


def measure(
    tmp: Path, ids: list[int], queries: np.ndarray, truth: list[set[int]], opts: dict[str, Any]
) -> dict[str, Any]:
    """A fresh process's view: index load time and memory, then raw store and service search timings."""
    from ailab.access.principal import MASTER
    from ailab.config.models import KnowledgeSettings
    from ailab.knowledge.rag import build_messages
    from ailab.knowledge.service import KnowledgeService
    from ailab.observability.metrics import Metrics

    class Vectors:  # the query vectors stand in for the embedder (its latency is measured in ingest.py)
        def __init__(self) -> None:
            self.next: np.ndarray | None = None

        async def embed(self, principal: Any, group: str, texts: list[str]) -> np.ndarray:
            assert self.next is not None
            return self.next[None, :]

    gc.collect()
    before = rss_mb()
    emb = Vectors()
    settings = KnowledgeSettings(stores={"embedded": opts})
    svc = KnowledgeService(tmp, settings, emb, Metrics().knowledge)  # type: ignore[arg-type]
    coll = svc.get("bench")
    store = svc.store("embedded")
    t0 = time.perf_counter()
    store.search(coll.namespace, queries[0], 10)
    load_s = time.perf_counter() - t0
    index_mb = rss_mb() - before
    raw, recall = [], []
    for q, t in zip(queries, truth, strict=True):
        s = time.perf_counter()
        got = store.search(coll.namespace, q, 10)
        raw.append(time.perf_counter() - s)
        recall.append(len({i for i, _ in got} & t) / 10)
    rng = np.random.default_rng(5)
    texts = [" ".join(words(rng, 6)) for _ in queries]
    e2e: dict[str, list[float]] = {"hybrid": [], "dense": []}

    async def run() -> None:
        for q, text in zip(queries, texts, strict=True):
            emb.next = q
            for mode, samples in e2e.items():  # interleaved, so both see the same load
                s = time.perf_counter()
                hits = await svc.search(MASTER, [coll], text, 5, mode=mode)
                build_messages(text, hits)
                samples.append(time.perf_counter() - s)

    asyncio.run(run())
    svc.close()
    return {
        "index_load_s": round(load_s, 2),
        "index_rss_mb": round(index_mb, 1),
        "store": {**percentiles(raw), "recall@10": round(float(np.mean(recall)), 4)},
        "search_and_prompt": {mode: percentiles(v) for mode, v in e2e.items()},
    }


def peer(
    kind: str, tmp: Path, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]], cap: float
) -> dict[str, Any]:
    from ailab.knowledge.stores import open_store

    store = open_store(kind, tmp, {"path": str(tmp / "qdrant")} if kind == "qdrant" else {})
    store.create(NS, DIM)
    t0, loaded = time.perf_counter(), 0
    for lo in range(0, len(vectors), 5000):
        if time.perf_counter() - t0 > cap:
            store.close()
            return {
                "store": kind,
                "finished": False,
                "note": f"loaded {loaded} of {len(vectors)} in {cap:.0f} s cap",
            }
        store.upsert(NS, list(range(lo, min(lo + 5000, len(vectors)))), vectors[lo : lo + 5000])
        loaded = min(lo + 5000, len(vectors))
    load_s = time.perf_counter() - t0
    samples: list[float] = []
    recall: list[float] = []
    t1 = time.perf_counter()
    for q, t in zip(queries[:30], truth[:30], strict=True):
        if samples and time.perf_counter() - t1 > cap:
            break  # the same cap for the queries: report those that ran
        s = time.perf_counter()
        got = {i for i, _ in store.search(NS, q, 10)}
        samples.append(time.perf_counter() - s)
        recall.append(len(got & t) / 10)
    store.close()
    return {
        "store": kind,
        "finished": True,
        "load_s": round(load_s, 1),
        "queries": len(samples),
        **percentiles(samples),
        "recall@10": round(float(np.mean(recall)), 4),
    }


def truth_of(d: Path, vectors: np.ndarray, queries: np.ndarray) -> tuple[list[set[int]], float | None]:
    """Exact top 10 by row, cached in the data dir (an exact pass over 1M rows takes minutes)."""
    path = d / "truth.npy"
    if path.is_file():
        rows = np.load(path)
        if rows.shape[0] == len(queries):
            return [set(map(int, r)) for r in rows], None
    t0 = time.perf_counter()
    truth = exact(vectors, queries)
    numpy_ms = (time.perf_counter() - t0) / len(queries) * 1000
    np.save(path, np.array([sorted(t) for t in truth], dtype=np.int64))
    return truth, numpy_ms


def stored_ids(d: Path) -> list[int]:
    ids = np.fromfile(d / "knowledge" / "embedded" / NS / "ids.i64", dtype=np.int64)
    return [int(i) for i in ids]


def embedded(a: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    opts: dict[str, Any] = {} if a.ef_construction is None else {"ef_construction": a.ef_construction}
    with contextlib.ExitStack() as stack:
        if a.reuse or a.keep:
            d = Path(a.reuse or a.keep)
            d.mkdir(parents=True, exist_ok=True)
        else:
            d = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=".bench")))
        truth, numpy_ms = truth_of(d, vectors, queries)
        out: dict[str, Any] = {"store_options": opts, "numpy_exact_mean_ms": numpy_ms}
        if a.reuse:
            built = json.loads((d / "build.json").read_text())
            ids = stored_ids(d)
        else:
            built, ids = build(d, a.n, vectors, a.text_words, opts)
            (d / "build.json").write_text(json.dumps({**built, "store_options": opts}))
        out.update(built)
        if a.build_only:
            return out
        exact_ids = [{ids[i] for i in t} for t in truth]  # rows → the catalog's chunk ids
        out["runs"] = []
        for ef in [int(x) for x in a.ef_search.split(",")] if a.ef_search else [None]:
            run_opts = {**opts, **({} if ef is None else {"ef_search": ef})}
            row = {"ef_search": ef, **measure(d, ids, queries, exact_ids, run_opts)}
            print(json.dumps(row), flush=True)
            out["runs"].append(row)
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--text-words", type=int, default=150, help="words per synthetic chunk text")
    ap.add_argument("--cap", type=float, default=600, help="seconds each peer store may take to load")
    ap.add_argument("--peers", default="milvus,qdrant")
    ap.add_argument(
        "--ef-construction", type=int, default=None, help="HNSW build effort (default: the store's)"
    )
    ap.add_argument("--ef-search", default=None, help="comma-separated ef_search values to measure")
    ap.add_argument("--keep", default=None, help="build into this data dir and keep it")
    ap.add_argument("--reuse", default=None, help="measure the store kept in this data dir")
    ap.add_argument("--build-only", action="store_true", help="build (and keep), measure nothing")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    Path(".bench").mkdir(exist_ok=True)
    vectors, queries = data(a.n, a.queries)
    result: dict[str, Any] = {"n": a.n, "dim": DIM, "vectors": "synthetic, clustered"}
    result["embedded"] = embedded(a, vectors, queries)
    print(json.dumps(result, indent=1), flush=True)
    result["peers"] = []
    if a.peers:
        truth = exact(vectors, queries)
    for kind in [p for p in a.peers.split(",") if p]:
        with tempfile.TemporaryDirectory(dir=".bench") as tmp:
            row = peer(kind, Path(tmp), vectors, queries, truth, a.cap)
            print(row, flush=True)
            result["peers"].append(row)
    tag = "-build" if a.build_only else ""
    out = Path(a.out or f"bench/results/knowledge-scale-{a.n}{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
