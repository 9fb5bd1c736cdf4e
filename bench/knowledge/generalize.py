"""Do the lab's retrieval defaults generalize? The v2 question sets (bench/knowledge/questions/v2: user-phrased
questions over the PostgreSQL 15 docs and Debian's python3.11-doc, each split into a dev and a test half),
hit@1 / hit@5 / MRR@10 at page level, for the lab's pipeline (its chunking and context, MiniLM, BM25 with
title/heading weights, document-level fusion) and its levers (fusion weights, RRF k, BM25 column weights),
beside the naive baseline of issue 8 (200-word windows with the page title, MiniLM, FTS5 BM25, RRF).

Offline: the lab's own parser, chunker, query terms and fusion functions, an exact dense search (what the
embedded store does below its ANN threshold) and an in-memory FTS5 index like the catalog's. Embeddings are
cached by text (bench/knowledge/embcache.py, one file per corpus). The corpus is every page that answers
some question of the corpus, each cut to its first `--cap` words (`--corpus answers`, the default: the
built-in embedder did 1-3 texts/s on the shared box), or the whole documentation (`--corpus all --cap 0`).
Questions whose evidence phrase is not in the kept text of one of their pages are left out (listed in the
output). Levers are chosen on the dev halves; the test halves are only reported.

    python -m bench.knowledge generalize [--corpus answers|all] [--cap 1000] [--corpora pgdocs,pydocs]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

V2 = Path(__file__).parent / "questions" / "v2"
ROOTS = {
    "pgdocs": Path("/usr/share/doc/postgresql-doc-15/html"),
    "pydocs": Path("/usr/share/doc/python3.11-doc/html"),
}
TOP = 10
CACHE = Path(".bench/knowledge/embeddings.npz")
CAP = 1000  # words kept of each page (its first chunks / windows): see the module docstring
N = 40  # candidates a ranking, as the service asks for k = 10 (max(4k, 40))


def questions(corpus: str, half: str) -> list[dict[str, Any]]:
    lines = (V2 / f"{corpus}-{half}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def pages(corpus: str, which: str) -> list[str]:
    root = ROOTS[corpus]
    if which == "all":
        return sorted(str(p.relative_to(root)) for p in root.rglob("*.html") if "_" not in p.parts[-2][:1])
    wanted = {s for half in ("dev", "test") for q in questions(corpus, half) for s in q["sources"]}
    return sorted(wanted)


@dataclass
class Index:
    """One system's units (chunks or windows) over a corpus: page, FTS columns, embedded text, vectors."""

    page: list[str] = field(default_factory=list)
    columns: list[tuple[str, ...]] = field(default_factory=list)
    embed: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None
    db: sqlite3.Connection | None = None


def lab_index(corpus: str, files: list[str], cap: int) -> Index:
    from ailab.knowledge.worker import prepare

    out = Index()
    root = ROOTS[corpus]
    for rel in files:
        prepared = prepare(rel, rel, (root / rel).read_bytes(), None, 200, 32)
        words = 0
        for c in prepared.chunks:
            if cap and words >= cap:
                break
            words += len(c.text.split())
            out.page.append(rel)
            out.columns.append((prepared.title, " › ".join(c.heading), c.text))
            out.embed.append(c.embed_text(prepared.title))
    return out


def baseline_index(corpus: str, files: list[str], cap: int) -> Index:
    import lxml.html

    out = Index()
    for rel in files:
        root = lxml.html.document_fromstring((ROOTS[corpus] / rel).read_bytes())
        title_el = root.find(".//title")
        title = title_el.text_content().strip() if title_el is not None else Path(rel).stem
        body = root.find("body")
        words = (body if body is not None else root).text_content().split()
        words = words[:cap] if cap else words
        for start in range(0, max(len(words), 1), 200):
            text = f"{title}\n" + " ".join(words[start : start + 200])
            out.page.append(rel)
            out.columns.append((text,))
            out.embed.append(text)
    return out


def embed_all(indexes: list[Index], cache_path: Path) -> None:
    from ailab.knowledge.embedder import MiniLMEmbedder
    from bench.knowledge.embcache import CachingEmbedder, EmbeddingCache

    cache = EmbeddingCache(cache_path)
    emb = CachingEmbedder(MiniLMEmbedder(), cache)
    for ix in indexes:
        parts = []
        for i in range(0, len(ix.embed), 32):
            parts.append(emb.embed(ix.embed[i : i + 32])[0])
            if emb.misses and i % 320 == 0:
                cache.save()
                print(f"  embedded {i + 32}/{len(ix.embed)} (new {emb.misses})", flush=True)
        ix.vectors = np.concatenate(parts) if parts else np.zeros((0, emb.dimension), np.float32)
    cache.save()


def fts(ix: Index) -> None:
    db = sqlite3.connect(":memory:")
    cols = ["title", "heading", "text"] if len(ix.columns[0]) == 3 else ["text"]
    tok = "porter unicode61" if len(cols) == 3 else "unicode61"
    db.execute(f"CREATE VIRTUAL TABLE f USING fts5({', '.join(cols)}, tokenize='{tok}')")
    marks = ", ".join("?" * len(cols))
    db.executemany(
        f"INSERT INTO f (rowid, {', '.join(cols)}) VALUES (?, {marks})",
        [(i, *c) for i, c in enumerate(ix.columns)],
    )
    ix.db = db


def build(corpus: str, which: str, cap: int) -> dict[str, Index]:
    files = pages(corpus, which)
    out = {"lab": lab_index(corpus, files, cap), "baseline": baseline_index(corpus, files, cap)}
    print(f"{corpus}: {len(files)} pages, {len(out['lab'].page)} chunks, {len(out['baseline'].page)} windows")
    embed_all(list(out.values()), CACHE.with_name(f"embeddings-{corpus}.npz"))
    for ix in out.values():
        fts(ix)
    return out


# -- rankings -------------------------------------------------------------------------------------

Ranking = list[tuple[int, float]]


def dense(ix: Index, qv: np.ndarray, n: int) -> Ranking:
    assert ix.vectors is not None
    sims = ix.vectors @ qv
    top = np.argsort(-sims)[:n]
    return [(int(i), float(sims[i])) for i in top]


def sparse(ix: Index, query: str, n: int, weights: tuple[float, ...]) -> Ranking:
    from ailab.knowledge.catalog_base import fts_query

    assert ix.db is not None
    match = fts_query(query)
    if match is None:
        return []
    w = ", ".join(str(x) for x in weights)
    rows = ix.db.execute(
        f"SELECT rowid, -bm25(f, {w}) FROM f WHERE f MATCH ? ORDER BY bm25(f, {w}) LIMIT ?",
        (match, n),
    ).fetchall()
    return [(int(i), float(s)) for i, s in rows]


def page_order(ix: Index, ranking: Ranking) -> list[str]:
    return list(dict.fromkeys(ix.page[i] for i, _ in ranking))


@dataclass(frozen=True)
class Lever:
    """One setting of the lab's fusion: RRF k, (dense, sparse) weights, BM25 (title, heading, text) weights."""

    k: int = 60
    dense_weight: float = 1.0
    bm25: tuple[float, float, float] = (4.0, 2.0, 1.0)

    def label(self) -> str:
        return f"k={self.k} dense×{self.dense_weight:g} bm25={'/'.join(f'{x:g}' for x in self.bm25)}"


def lab_fused(ix: Index, qv: np.ndarray, query: str, lever: Lever) -> list[str]:
    from ailab.knowledge.fusion import fuse_documents

    d, s = dense(ix, qv, N), sparse(ix, query, N, lever.bm25)
    document_of = {i: ix.page[i] for i, _ in [*d, *s]}
    docs = fuse_documents([d, s], document_of, lever.k, (lever.dense_weight, 1.0))
    return [doc.key for doc in docs]


def baseline_fused(ix: Index, qv: np.ndarray, query: str) -> list[str]:
    from ailab.knowledge.fusion import rrf

    return page_order(ix, rrf([dense(ix, qv, 50), sparse(ix, query, 50, (1.0,))]))


def score(items: list[dict[str, Any]], ranked: dict[str, list[str]]) -> dict[str, float]:
    h1 = h5 = mrr = 0.0
    for item in items:
        order = ranked[item["question"]][:TOP]
        ranks = [i for i, p in enumerate(order) if p in set(item["sources"])]
        h1 += bool(ranks) and ranks[0] == 0
        h5 += bool(ranks) and ranks[0] < 5
        mrr += 1.0 / (ranks[0] + 1) if ranks else 0.0
    n = max(len(items), 1)
    return {
        "hit@1": round(h1 / n, 3),
        "hit@5": round(h5 / n, 3),
        "mrr@10": round(mrr / n, 3),
        "n": len(items),
    }


def answerable(items: list[dict[str, Any]], ix: Index) -> tuple[list[dict[str, Any]], list[str]]:
    """The questions whose evidence phrase is in the kept part of one of their source pages."""
    kept: dict[str, str] = {}
    for page, cols in zip(ix.page, ix.columns, strict=True):
        kept[page] = kept.get(page, "") + " " + " ".join(cols).lower()
    good = [q for q in items if any(q["evidence"].lower() in kept.get(s, "") for s in q["sources"])]
    return good, [q["question"] for q in items if q not in good]


# -- the run --------------------------------------------------------------------------------------

DEFAULT = Lever()
GRID = [
    Lever(k, w, bm)
    for k in (10, 30, 60, 100)
    for w in (1.0, 1.5, 2.0, 3.0, 5.0)
    for bm in ((4.0, 2.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 1.0))
]


def rank_corpus(corpus: str, which: str, cap: int) -> dict[str, Any]:
    """Per system and per question, the page ranking; and the questions of each half kept and dropped."""
    from ailab.knowledge.embedder import MiniLMEmbedder

    ixs = build(corpus, which, cap)
    halves = {}
    for half in ("dev", "test"):
        good, dropped = answerable(questions(corpus, half), ixs["lab"])
        halves[half] = {"items": good, "dropped": dropped}
    qs = [q["question"] for h in halves.values() for q in h["items"]]
    qv = dict(zip(qs, MiniLMEmbedder().embed(qs)[0], strict=True))
    lab, base = ixs["lab"], ixs["baseline"]
    runs: dict[str, dict[str, list[str]]] = {
        "baseline hybrid": {q: baseline_fused(base, qv[q], q) for q in qs},
        "baseline dense": {q: page_order(base, dense(base, qv[q], 50)) for q in qs},
        "baseline sparse": {q: page_order(base, sparse(base, q, 50, (1.0,))) for q in qs},
        "lab dense": {q: page_order(lab, dense(lab, qv[q], N)) for q in qs},
        "lab sparse": {q: page_order(lab, sparse(lab, q, N, DEFAULT.bm25)) for q in qs},
    }
    for lever in GRID:
        runs[lever.label()] = {q: lab_fused(lab, qv[q], q, lever) for q in qs}
    return {"halves": halves, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", choices=("answers", "all"), default="answers")
    ap.add_argument("--cap", type=int, default=CAP, help="words kept of each page (0: all)")
    ap.add_argument("--corpora", default=",".join(ROOTS), help="comma-separated: pgdocs,pydocs")
    ap.add_argument("--out", default="bench/results/knowledge-generalize.json")
    args = ap.parse_args()
    result: dict[str, Any] = {"corpus": args.corpus, "cap": args.cap, "default": DEFAULT.label()}
    scores: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    corpora = args.corpora.split(",")
    for corpus in corpora:
        ranked = rank_corpus(corpus, args.corpus, args.cap)
        result[f"{corpus} dropped"] = {h: v["dropped"] for h, v in ranked["halves"].items()}
        for half, h in ranked["halves"].items():
            for name, run in ranked["runs"].items():
                scores.setdefault(name, {}).setdefault(corpus, {})[half] = score(h["items"], run)

    def dev_key(name: str) -> tuple[float, float]:
        s = scores[name]
        return (sum(s[c]["dev"]["mrr@10"] for c in corpora), sum(s[c]["dev"]["hit@5"] for c in corpora))

    best = max((lv.label() for lv in GRID), key=dev_key)
    result["chosen on dev"] = best
    result["scores"] = scores
    shown = ["baseline hybrid", "baseline dense", "baseline sparse", "lab dense", "lab sparse"]
    for name in [*shown, DEFAULT.label() + " (default)", best + " (chosen on dev)"]:
        key = name.split(" (")[0]
        cells = [
            f"{c} {h} " + "/".join(f"{scores[key][c][h][m]:.2f}" for m in ("hit@1", "hit@5", "mrr@10"))
            for c in corpora
            for h in ("dev", "test")
        ]
        print(f"{name:48} " + " | ".join(cells))
    ranked_dev = sorted((lv.label() for lv in GRID), key=dev_key, reverse=True)
    print("top levers on dev (mrr@10 sum, hit@5 sum):")
    for name in ranked_dev[:8]:
        per = {c: [scores[name][c]["dev"][m] for m in ("hit@1", "hit@5", "mrr@10")] for c in corpora}
        print(f"  {name:40} {per}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
