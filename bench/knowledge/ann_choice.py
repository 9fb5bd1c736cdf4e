"""Which ANN library for the embedded store: hnswlib, usearch and faiss-cpu (HNSW) side by side on the same
vectors — build time, query p50/p95 (one query at a time, as a search does), recall@10 against exact, and
resident memory added by the index. Synthetic clustered unit vectors (see `clustered`).

    python -m bench.knowledge.ann_choice [--n 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray, spread: float = 0.6) -> np.ndarray:
    """Unit vectors around random centres: closer to real embeddings (which crowd in topics) than uniform
    noise on the sphere, where every neighbour is about as far as every other."""
    pick = rng.integers(0, len(centers), n)
    v = centers[pick] + spread * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    out: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def exact(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> list[set[int]]:
    out = []
    for q in queries:
        s = vectors @ q
        out.append({int(i) for i in np.argpartition(-s, k - 1)[:k]})
    return out


Search = Callable[[np.ndarray], list[int]]


def build_hnswlib(v: np.ndarray, m: int, efc: int, ef: int) -> tuple[Any, Search]:
    import hnswlib

    idx = hnswlib.Index(space="ip", dim=DIM)
    idx.init_index(max_elements=len(v), M=m, ef_construction=efc, allow_replace_deleted=True)
    idx.set_num_threads(2)
    idx.add_items(v, np.arange(len(v)))
    idx.set_ef(ef)
    idx.set_num_threads(1)
    return idx, lambda q: [int(i) for i in idx.knn_query(q, k=10)[0][0]]


def build_usearch(v: np.ndarray, m: int, efc: int, ef: int, dtype: str = "f32") -> tuple[Any, Search]:
    from usearch.index import Index

    idx = Index(ndim=DIM, metric="ip", dtype=dtype, connectivity=m, expansion_add=efc, expansion_search=ef)
    idx.add(np.arange(len(v)), v, threads=2)
    return idx, lambda q: [int(i) for i in idx.search(q, 10, threads=1).keys]


def build_faiss(v: np.ndarray, m: int, efc: int, ef: int) -> tuple[Any, Search]:
    import faiss

    faiss.omp_set_num_threads(2)
    idx = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = efc
    idx.add(v)
    idx.hnsw.efSearch = ef
    faiss.omp_set_num_threads(1)
    return idx, lambda q: [int(i) for i in idx.search(q[None, :], 10)[1][0]]


def measure(
    name: str, build: Callable[[], tuple[Any, Search]], queries: np.ndarray, truth: list[set[int]]
) -> dict[str, Any]:
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    idx, search = build()
    build_s = time.perf_counter() - t0
    mem = rss_mb() - before
    samples, recall = [], []
    for q, t in zip(queries, truth, strict=True):
        s = time.perf_counter()
        got = search(q)
        samples.append(time.perf_counter() - s)
        recall.append(len(set(got) & t) / 10)
    ms = np.array(samples) * 1000
    del idx
    row = {
        "library": name,
        "build_s": round(build_s, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "recall@10": round(float(np.mean(recall)), 4),
        "index_rss_mb": round(mem, 1),
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=100)
    ap.add_argument("--ef", type=int, default=96)
    ap.add_argument("--only", default="hnswlib,usearch,usearch-f16,faiss")
    ap.add_argument("--out", default="bench/results/ann-choice.json")
    a = ap.parse_args()
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((max(100, a.n // 100), DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    v, q = clustered(rng, a.n, centers), clustered(rng, a.queries, centers)
    truth = exact(v, q)
    builders: dict[str, Callable[[], tuple[Any, Search]]] = {
        "hnswlib": lambda: build_hnswlib(v, a.m, a.efc, a.ef),
        "usearch": lambda: build_usearch(v, a.m, a.efc, a.ef),
        "usearch-f16": lambda: build_usearch(v, a.m, a.efc, a.ef, "f16"),
        "faiss": lambda: build_faiss(v, a.m, a.efc, a.ef),
    }
    rows = [measure(n, builders[n], q, truth) for n in a.only.split(",")]
    meta = {"n": a.n, "dim": DIM, "M": a.m, "ef_construction": a.efc, "ef_search": a.ef}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"settings": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
