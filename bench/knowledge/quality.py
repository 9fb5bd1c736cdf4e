"""Retrieval quality on labelled questions over the PostgreSQL docs (bench/knowledge/questions/): hit@1,
hit@5 and MRR@10 at page level (several chunks of one page count once) for dense, sparse and hybrid search
with the lab's defaults, against a naive baseline (200-word windows prefixed with the page title,
all-MiniLM-L6-v2, SQLite FTS5 BM25, RRF).

Three sets: `word_sharing` (questions reusing the answering page's words), `user_phrased` (symptoms and
goals, few shared words) and `user-heldout` (more of those, written before any tuning and never tuned on).

The lab is searched through its service, as `ask` does, with k = 10: its default document-level fusion
(`hybrid`, `dense`, `sparse`) and chunk-level RRF (`group="chunk"`) for comparison. It needs the index in
.bench/knowledge/lab: the ingest benchmark leaves one (python -m bench.knowledge.ingest), and `--rebuild`
builds it here through the same pipeline, with embeddings cached by text (bench/knowledge/embcache.py), so
after a chunking change only new chunk texts are embedded.

    python -m bench.knowledge.quality [--rebuild]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.knowledge.ingest import DOCS, LAB_DIR

QUESTIONS = Path(__file__).parent / "questions"
SETS = ("word_sharing", "user_phrased", "user-heldout")
CACHE = Path(".bench/knowledge/baseline.npz")
TOP = 10  # results asked of the lab per question (MRR@10 needs ten pages)
Ranker = Callable[[str], list[str]]  # question → pages, best first


def pages_in_order(sources: list[str]) -> list[str]:
    return list(dict.fromkeys(Path(s).name for s in sources))


def score(questions: list[dict[str, Any]], ranker: Ranker) -> dict[str, float]:
    h1 = h5 = mrr = 0.0
    for item in questions:
        ranked = ranker(item["q"])[:10]
        good = set(item["pages"])
        ranks = [i for i, p in enumerate(ranked) if p in good]
        h1 += bool(ranks) and ranks[0] == 0
        h5 += bool(ranks) and ranks[0] < 5
        mrr += 1.0 / (ranks[0] + 1) if ranks else 0.0
    n = len(questions)
    return {"hit@1": round(h1 / n, 3), "hit@5": round(h5 / n, 3), "mrr@10": round(mrr / n, 3)}


# -- the lab's defaults ---------------------------------------------------------------------------


def _config() -> Path:
    cfg = LAB_DIR / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    return cfg


async def rebuild() -> None:
    """The lab's index of the docs, through its ingestion pipeline, with cached embeddings."""
    from ailab.access.principal import MASTER
    from ailab.config import load_config
    from ailab.server.local import open_lab
    from bench.knowledge.embcache import EmbeddingCache, install

    shutil.rmtree(LAB_DIR, ignore_errors=True)
    LAB_DIR.mkdir(parents=True)
    cache = EmbeddingCache()
    embedder = install(cache)
    async with open_lab(load_config(_config(), LAB_DIR)) as (_, svc):
        coll = await svc.create_collection(MASTER, "pgdocs")
        report = await svc.ingest_paths(MASTER, coll, sorted(DOCS.glob("*.html")), workers=1)
    cache.save()
    print(f"rebuilt: {report.added} pages, {report.chunks} chunks, {embedder.misses} embedded anew")


async def lab_rankers(questions: list[str]) -> dict[str, dict[str, list[str]]]:
    """Per mode, each question's page ranking, from the lab's index (through its service and gateway)."""
    from ailab.access.principal import MASTER
    from ailab.config import load_config
    from ailab.server.local import open_lab

    runs: dict[str, dict[str, Any]] = {
        "dense": {"mode": "dense"},
        "sparse": {"mode": "sparse"},
        "hybrid": {},
        "hybrid, chunk-level RRF": {"group": "chunk"},
    }
    out: dict[str, dict[str, list[str]]] = {}
    async with open_lab(load_config(_config(), LAB_DIR)) as (_, svc):
        coll = svc.get("pgdocs")
        for name, kw in runs.items():
            out[name] = {}
            for q in questions:
                hits = await svc.search(MASTER, [coll], q, TOP, **kw)
                out[name][q] = pages_in_order([h.meta["source"] for h in hits])
    return out


# -- the naive baseline ---------------------------------------------------------------------------


def windows() -> list[tuple[str, str]]:
    import lxml.html

    out = []
    for f in sorted(DOCS.glob("*.html")):
        root = lxml.html.document_fromstring(f.read_bytes())
        title_el = root.find(".//title")
        title = title_el.text_content().strip() if title_el is not None else f.stem
        body = root.find("body")
        words = (body if body is not None else root).text_content().split()
        for start in range(0, max(len(words), 1), 200):
            out.append((f.name, f"{title}\n" + " ".join(words[start : start + 200])))
    return out


def baseline_rankers(questions: list[str]) -> dict[str, dict[str, list[str]]]:
    from ailab.knowledge.catalog import fts_query
    from ailab.knowledge.embedder import MiniLMEmbedder

    wins = windows()
    texts = [t for _, t in wins]
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    embedder = MiniLMEmbedder()
    if CACHE.exists() and str(np.load(CACHE)["digest"]) == digest:
        vectors = np.load(CACHE)["vectors"]
    else:
        vectors = np.concatenate([embedder.embed(texts[i : i + 64])[0] for i in range(0, len(texts), 64)])
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, vectors=vectors, digest=np.array(digest))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE w USING fts5(text)")
    db.executemany("INSERT INTO w (rowid, text) VALUES (?, ?)", list(enumerate(texts)))
    qv = embedder.embed(questions)[0]
    out: dict[str, dict[str, list[str]]] = {"dense": {}, "sparse": {}, "hybrid": {}}
    for q, v in zip(questions, qv, strict=True):
        dense = [int(i) for i in np.argsort(-(vectors @ v))[:50]]
        match = fts_query(q)
        rows = db.execute(
            "SELECT rowid FROM w WHERE w MATCH ? ORDER BY bm25(w) LIMIT 50", (match,)
        ).fetchall()
        sparse = [int(r[0]) for r in rows]
        fused: dict[int, float] = {}
        for ranking in (dense, sparse):
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1.0 / (61 + rank)
        hybrid = sorted(fused, key=lambda i: -fused[i])
        for name, ids in (("dense", dense), ("sparse", sparse), ("hybrid", hybrid)):
            out[name][q] = pages_in_order([wins[i][0] for i in ids])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild", action="store_true", help="re-ingest the lab index (cached embeddings)")
    ap.add_argument("--out", default="bench/results/knowledge-quality.json")
    args = ap.parse_args()
    if args.rebuild or not (LAB_DIR / "knowledge" / "catalog.sqlite").exists():
        asyncio.run(rebuild())
    sets = {name: json.loads((QUESTIONS / f"{name}.json").read_text()) for name in SETS}
    questions = list(dict.fromkeys(item["q"] for items in sets.values() for item in items))
    systems = {
        "baseline": baseline_rankers(questions),
        "lab": asyncio.run(lab_rankers(questions)),
    }
    result: dict[str, Any] = {}
    for set_name, items in sets.items():
        for system, modes in systems.items():
            for mode, ranking in modes.items():
                row = score(items, lambda q, r=ranking: r[q])  # type: ignore[misc]
                result.setdefault(set_name, {"questions": len(items)})[f"{system} {mode}"] = row
                print(f"{set_name:13} {system:8} {mode:24} {row}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
