"""The catalog's sparse side at N chunks: FTS5 bm25 (what a collection below `sparse_min_rows` uses) against
the numpy BM25 index (knowledge/sparse.py) on the same catalog file and queries, interleaved query by query;
build time and files of the index; agreement of the two top 10s (they rank with the same formula).

    python -m bench.knowledge.sparse [--n 100000] [--text-words 30] [--queries 200]
    python -m bench.knowledge.sparse --catalog .bench/scale-1m/knowledge/catalog.sqlite   # a kept catalog
    python -m bench.knowledge.sparse --synthetic 1000000   # the index alone, postings made in numpy

`--synthetic` skips the catalog and FTS5's tokenizer (minutes at 1M on a loaded box): the postings of N
chunks of Zipf text (the same words, unstemmed, title and heading tokens) go straight into a SparseIndex,
and its search is timed and checked against scoring every posting (no pruning).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.knowledge.ann_choice import rss_mb
from bench.knowledge.retrieval import percentiles, words


def fill(path: Path, n: int, text_words: int, per_doc: int = 10) -> str:
    """N chunks of Zipf text in one collection (as bench.knowledge.scale fills it); returns its id."""
    from ailab.knowledge.catalog import Collection
    from ailab.knowledge.catalog_sqlite import SqliteCatalog

    cat = SqliteCatalog(path)
    coll = Collection("bench", "bench", None, "embedded", "synthetic", 384, 200, 32, 0, "bench")
    cat.add_collection(coll)
    rng = np.random.default_rng(11)
    for start in range(0, n, 5000):
        with cat.connect() as db:
            for first in range(start, min(start + 5000, n), per_doc):
                source = f"doc{first // per_doc}.html"
                rows = [
                    (" ".join(words(rng, text_words)), i, "Heading", {"source": source})
                    for i in range(min(per_doc, n - first))
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
                cat.insert_document(db, doc, rows)
    return coll.id


def measure(path: Path, coll_id: str, n_queries: int) -> dict[str, Any]:
    from ailab.knowledge.catalog_sqlite import SqliteCatalog

    fts = SqliteCatalog(path, sparse_min_rows=1 << 62)
    before = rss_mb()
    sparse = SqliteCatalog(path, sparse_min_rows=0)
    t0 = time.perf_counter()
    sparse.bm25(coll_id, "warm up", 10)  # builds the index from the catalog, or loads it
    first_s = time.perf_counter() - t0
    index_mb = rss_mb() - before
    t0 = time.perf_counter()
    SqliteCatalog(path, sparse_min_rows=0).bm25(coll_id, "warm up", 10)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(5)  # the query texts of bench.knowledge.scale
    texts = [" ".join(words(rng, 6)) for _ in range(n_queries)]
    times: dict[str, list[float]] = {"fts5": [], "sparse": []}
    agree = []
    for text in texts:
        s = time.perf_counter()
        a = fts.bm25(coll_id, text, 50)
        times["fts5"].append(time.perf_counter() - s)
        s = time.perf_counter()
        b = sparse.bm25(coll_id, text, 50)
        times["sparse"].append(time.perf_counter() - s)
        # Ties at the cut may order differently: compare scores of the top 10.
        agree.append(bool(np.allclose([x for _, x in a[:10]], [x for _, x in b[:10]], rtol=1e-4)))
    d = path.parent / "sparse" / coll_id
    size = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    return {
        "first_search_s (build or load)": round(first_s, 2),
        "load_s": round(load_s, 2),
        "index_rss_mb": round(index_mb, 1),
        "index_files_mb": round(size / 2**20, 1),
        "fts5": percentiles(times["fts5"]),
        "sparse": percentiles(times["sparse"]),
        "top10_scores_equal": round(float(np.mean(agree)), 4),
    }


def synthetic(n: int, text_words: int, n_queries: int) -> dict[str, Any]:
    from ailab.knowledge.catalog_base import COMMON_MIN_ROWS, COMMON_SHARE, query_terms
    from ailab.knowledge.sparse import SparseIndex, _grouped
    from bench.knowledge.retrieval import VOCAB

    rng = np.random.default_rng(11)
    t0 = time.perf_counter()
    vocab = [*VOCAB, "t", "heading"]
    ranks = np.minimum(rng.zipf(1.2, n * text_words), len(VOCAB)) - 1
    docs = np.repeat(np.arange(n, dtype=np.int64), text_words)
    pair = np.unique(ranks.astype(np.int64) * n + docs, return_counts=True)
    tid, slot = pair[0] // n, pair[0] % n
    freqs = pair[1].astype(np.float32)
    extra = np.arange(n, dtype=np.int64)  # every chunk's title "T" (weight 4) and heading (weight 2)
    tid = np.concatenate([tid, np.full(n, len(VOCAB)), np.full(n, len(VOCAB) + 1)])
    slot = np.concatenate([slot, extra, extra])
    freqs = np.concatenate([freqs, np.full(n, 4.0, np.float32), np.full(n, 2.0, np.float32)])
    index = SparseIndex(Path("/nonexistent"))
    index.segments = [_grouped(np.array(vocab), tid, slot, freqs, 0, n)]  # looked up by dict: any order
    index.ids = np.arange(1, n + 1, dtype=np.int64)
    index.lens = np.full(n, text_words + 2, dtype=np.int32)
    index.live, index.live_tokens = n, n * (text_words + 2)
    build_s = time.perf_counter() - t0
    qrng = np.random.default_rng(5)
    texts = [" ".join(words(qrng, 6)) for _ in range(n_queries)]
    common = (COMMON_SHARE, COMMON_MIN_ROWS)
    times, agree = [], []
    for text in texts:
        terms = query_terms(text)
        s = time.perf_counter()
        got = index.search(terms, 50, None, common)
        times.append(time.perf_counter() - s)
        full = index.search(terms, 1 << 40, None, common)[:50]  # k above every count: no pruning
        agree.append(bool(np.allclose([x for _, x in got], [x for _, x in full], rtol=1e-6)))
    return {
        "n": n,
        "text_words": text_words,
        "postings": int(sum(len(seg.slots) for seg in index.segments)),
        "build_s (numpy, no tokenizer)": round(build_s, 1),
        "sparse_index_search": percentiles(times),
        "top50_equal_to_unpruned": round(float(np.mean(agree)), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--text-words", type=int, default=30)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--catalog", default=None, help="an existing catalog.sqlite (collection 'bench')")
    ap.add_argument("--synthetic", type=int, default=0, help="N chunks of postings, no catalog")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    Path(".bench").mkdir(exist_ok=True)
    result: dict[str, Any] = {"queries": a.queries}
    if a.synthetic:
        result.update(synthetic(a.synthetic, a.text_words, a.queries))
        a.n, a.catalog = a.synthetic, "synthetic"
    elif a.catalog:
        result.update(catalog=a.catalog, **measure(Path(a.catalog), "bench", a.queries))
    else:
        with tempfile.TemporaryDirectory(dir=".bench") as tmp:
            t0 = time.perf_counter()
            coll_id = fill(Path(tmp) / "catalog.sqlite", a.n, a.text_words)
            result.update(n=a.n, text_words=a.text_words, catalog_fill_s=round(time.perf_counter() - t0))
            print(f"catalog: {a.n} chunks in {result['catalog_fill_s']} s", flush=True)
            result.update(measure(Path(tmp) / "catalog.sqlite", coll_id, a.queries))
    out = Path(a.out or f"bench/results/knowledge-sparse-{a.n}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
