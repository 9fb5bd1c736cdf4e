"""Retrieval at N chunks: p50/p95 of the embedded store vs exact numpy on the same vectors, recall@10 against
exact, Qdrant local mode and Milvus Lite in the same table; and retrieval + prompt building end to end
(query embedding, hybrid dense + BM25 search, RRF, chunk fetch, prompt) on a catalog of N chunks.

    python -m bench.knowledge.retrieval [--n 100000] [--queries 200] [--qdrant-n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ailab.knowledge.stores import open_store

DIM = 384
WORDS = [
    "vacuum",
    "index",
    "table",
    "query",
    "replication",
    "backup",
    "restore",
    "transaction",
    "lock",
    "wal",
    "checkpoint",
    "trigger",
    "view",
    "function",
    "role",
    "privilege",
    "schema",
    "partition",
    "tablespace",
    "sequence",
    "cursor",
    "planner",
    "statistics",
    "analyze",
    "join",
    "aggregate",
    "window",
    "json",
    "array",
    "range",
    "enum",
    "domain",
    "constraint",
    "foreign",
    "primary",
    "unique",
    "check",
    "default",
]


VOCAB = WORDS + [f"w{i}" for i in range(30_000)]


def words(rng: np.random.Generator, n: int) -> list[str]:
    """Zipf-distributed words over a 30k vocabulary: posting lists shaped like real text's."""
    ranks = np.minimum(rng.zipf(1.2, n), len(VOCAB)) - 1
    return [VOCAB[r] for r in ranks]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def time_store(
    kind: str, root: Path, vectors: np.ndarray, queries: np.ndarray, exact: list[set[int]]
) -> dict[str, Any]:
    store = open_store(kind, root, {"path": str(root / "qdrant")} if kind == "qdrant" else {})
    ns = "c_bench"
    store.drop(ns)
    store.create(ns, DIM)
    t0 = time.perf_counter()
    for start in range(0, len(vectors), 5000):
        store.upsert(ns, list(range(start, min(start + 5000, len(vectors)))), vectors[start : start + 5000])
    load_s = time.perf_counter() - t0
    samples, recall = [], []
    for q, truth in zip(queries, exact, strict=True):
        t = time.perf_counter()
        got = {i for i, _ in store.search(ns, q, 10)}
        samples.append(time.perf_counter() - t)
        recall.append(len(got & truth) / 10)
    store.drop(ns)
    store.close()
    return {
        "store": kind,
        "n": len(vectors),
        "load_s": round(load_s, 1),
        **percentiles(samples),
        "recall@10": round(float(np.mean(recall)), 4),
    }


def exact_numpy(vectors: np.ndarray, queries: np.ndarray) -> tuple[dict[str, Any], list[set[int]]]:
    samples, truth = [], []
    for q in queries:
        t = time.perf_counter()
        scores = vectors @ q
        top = np.argpartition(-scores, 9)[:10]
        samples.append(time.perf_counter() - t)
        truth.append({int(i) for i in top})
    return {
        "store": "numpy exact",
        "n": len(vectors),
        "load_s": 0.0,
        **percentiles(samples),
        "recall@10": 1.0,
    }, truth


def store_table(n: int, n_queries: int, qdrant_n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    vectors, queries = unit(rng, n), unit(rng, n_queries)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        row, truth = exact_numpy(vectors, queries)
        rows.append(row)
        rows.append(time_store("embedded", Path(tmp), vectors, queries, truth))
        few = min(n_queries, 30)  # Milvus Lite and Qdrant local mode take 0.2–2 s a query
        rows.append(time_store("milvus", Path(tmp), vectors, queries[:few], truth[:few]))
        small, small_q = vectors[:qdrant_n], queries[:few]
        _, small_truth = exact_numpy(small, small_q)
        rows.append(time_store("qdrant", Path(tmp), small, small_q, small_truth))
    return rows


def end_to_end(n: int, n_queries: int) -> dict[str, Any]:
    """Query embedding + hybrid search + prompt at n chunks in the embedded store (through the service)."""
    from ailab.config.models import KnowledgeSettings
    from ailab.knowledge.catalog import Collection
    from ailab.knowledge.embedder import shared_embedder
    from ailab.knowledge.rag import build_messages
    from ailab.knowledge.service import KnowledgeService
    from ailab.observability.metrics import Metrics

    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp:
        embedder = shared_embedder()

        class DirectEmbed:  # the built-in model, called directly (the gateway hop is measured elsewhere)
            async def embed(self, principal: Any, group: str, texts: list[str]) -> np.ndarray:
                return (await asyncio.to_thread(embedder.embed, texts))[0]

        svc = KnowledgeService(Path(tmp), KnowledgeSettings(), DirectEmbed(), Metrics().knowledge)  # type: ignore[arg-type]
        coll = Collection("bench", "bench", None, "embedded", "all-MiniLM-L6-v2", DIM, 200, 32, 0, "bench")
        svc.catalog.add_collection(coll)
        store = svc.store("embedded")
        store.create(coll.namespace, DIM)
        fill(svc.catalog, coll, store, n, rng)
        questions = [" ".join(words(rng, 6)) for _ in range(n_queries)]
        samples = []
        from ailab.access.principal import MASTER

        async def one(q: str) -> None:
            hits = await svc.search(MASTER, [coll], q, 5)
            build_messages(q, hits)

        async def run() -> None:
            await one("warm up")
            for q in questions:
                t = time.perf_counter()
                await one(q)
                samples.append(time.perf_counter() - t)

        asyncio.run(run())
        svc.close()
    return {"n": n, "what": "embed query + hybrid search + prompt", **percentiles(samples)}


def fill(catalog: Any, coll: Any, store: Any, n: int, rng: np.random.Generator, per_doc: int = 10) -> None:
    """n chunks of random Zipf text in documents of `per_doc` chunks (document-level fusion sees real
    documents), with random unit vectors."""
    batch = 5000
    for start in range(0, n, batch):
        m = min(batch, n - start)
        ids: list[int] = []
        with catalog.connect() as db:
            for first in range(start, start + m, per_doc):
                count = min(per_doc, start + m - first)
                source = f"doc{first // per_doc}.html"
                rows = [
                    (" ".join(words(rng, 150)), i, "Heading", {"source": source, "title": "T"})
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
                ids += catalog.insert_document(db, doc, rows)
        store.upsert(coll.namespace, ids, unit(rng, m))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--qdrant-n", type=int, default=20_000)
    ap.add_argument("--only-e2e", action="store_true", help="skip the store table")
    ap.add_argument("--out", default="bench/results/knowledge-retrieval.json")
    args = ap.parse_args()
    result = {
        "stores": [] if args.only_e2e else store_table(args.n, args.queries, args.qdrant_n),
        "end_to_end": end_to_end(args.n, args.queries),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for row in result["stores"]:
        print(row)
    print(result["end_to_end"])


if __name__ == "__main__":
    main()
