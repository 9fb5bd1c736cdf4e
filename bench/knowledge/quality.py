"""Retrieval quality on labelled questions over the PostgreSQL docs (bench/knowledge/questions/): hit@1,
hit@5 and MRR@10 at page level (several chunks of one page count once) for dense, sparse and hybrid search
of the lab's defaults, against a naive baseline (200-word windows prefixed with the page title,
all-MiniLM-L6-v2, SQLite FTS5 BM25, RRF).

Needs the index the ingest benchmark leaves in .bench/knowledge/lab (python -m bench.knowledge.ingest).

    python -m bench.knowledge.quality
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.knowledge.ingest import DOCS, LAB_DIR

QUESTIONS = Path(__file__).parent / "questions"
CACHE = Path(".bench/knowledge/baseline.npz")
Ranker = Callable[[str], list[str]]  # question → pages, best first


def pages_in_order(sources: list[str]) -> list[str]:
    return list(dict.fromkeys(Path(s).name for s in sources))


def rrf_pages(rankings: list[list[str]], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, page in enumerate(ranking):
            scores[page] = scores.get(page, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda p: -scores[p])


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


async def lab_rankers(questions: list[str]) -> dict[str, dict[str, list[str]]]:
    """Per mode, each question's page ranking, from the lab's index (through its service and gateway)."""
    from ailab.access.principal import MASTER
    from ailab.config import load_config
    from ailab.knowledge.local import open_lab

    cfg = LAB_DIR / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    out: dict[str, dict[str, list[str]]] = {}
    async with open_lab(load_config(cfg, LAB_DIR)) as (_, svc):
        coll = svc.get("pgdocs")
        for mode in ("dense", "sparse", "hybrid"):
            out[mode] = {}
            for q in questions:
                hits = await svc.search(MASTER, [coll], q, 50, mode=mode)
                out[mode][q] = pages_in_order([h.meta["source"] for h in hits])
        out["hybrid, page-level RRF"] = {q: rrf_pages([out["dense"][q], out["sparse"][q]]) for q in questions}
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
    sets = {
        name: json.loads((QUESTIONS / f"{name}.json").read_text())
        for name in ("word_sharing", "user_phrased")
    }
    questions = [item["q"] for items in sets.values() for item in items]
    systems = {
        "baseline": baseline_rankers(questions),
        "lab": asyncio.run(lab_rankers(questions)),
    }
    result: dict[str, Any] = {}
    for set_name, items in sets.items():
        for system, modes in systems.items():
            for mode, ranking in modes.items():
                row = score(items, lambda q, r=ranking: r[q])  # type: ignore[misc]
                result.setdefault(set_name, {})[f"{system} {mode}"] = row
                print(f"{set_name:13} {system:8} {mode:24} {row}")
    out = Path("bench/results/knowledge-quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
