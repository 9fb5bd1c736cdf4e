"""Ingest of the PostgreSQL 15 docs (Debian `postgresql-doc-15`, 1,169 HTML pages) through the lab's pipeline
(parse in a worker process while the built-in embedder runs, through the gateway, into the embedded store),
against the bare embedder on the same chunks: documents/s, chunks/s and their ratio.

    python -m bench.knowledge.ingest [--pages N] [--docs /usr/share/doc/postgresql-doc-15/html]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

DOCS = Path("/usr/share/doc/postgresql-doc-15/html")
LAB_DIR = Path(".bench/knowledge/lab")


async def pipeline(files: list[Path], data_dir: Path) -> dict[str, Any]:
    from ailab.access.principal import MASTER
    from ailab.config import load_config
    from ailab.server.local import open_lab

    cfg = data_dir / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    async with open_lab(load_config(cfg, data_dir)) as (_, svc):
        coll = await svc.create_collection(MASTER, "pgdocs")
        t0 = time.perf_counter()
        report = await svc.ingest_paths(MASTER, coll, files, workers=1)
        seconds = time.perf_counter() - t0
    return {
        "documents": report.added,
        "chunks": report.chunks,
        "failed": len(report.failed),
        "seconds": round(seconds, 1),
        "docs_per_s": round(report.added / seconds, 2),
        "chunks_per_s": round(report.chunks / seconds, 2),
    }


def bare(files: list[Path]) -> dict[str, Any]:
    """The embedder alone on the same chunk texts (chunking done beforehand, not timed)."""
    from ailab.knowledge.embedder import MiniLMEmbedder
    from ailab.knowledge.worker import prepare_path

    texts: list[str] = []
    for f in files:
        p = prepare_path(str(f), None, 200, 32)
        texts.extend(c.embed_text(p.title) for c in p.chunks)
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    t0 = time.perf_counter()
    for start in range(0, len(texts), 64):
        embedder.embed(texts[start : start + 64])
    seconds = time.perf_counter() - t0
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 1),
        "chunks_per_s": round(len(texts) / seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--pages", type=int, default=0, help="only the first N pages (0: all)")
    ap.add_argument("--out", default="bench/results/knowledge-ingest.json")
    args = ap.parse_args()
    files = sorted(args.docs.glob("*.html"))
    if not files:
        raise SystemExit(
            f"no HTML pages under {args.docs}: apt-get install postgresql-doc-15 (make bench-knowledge)"
        )
    if args.pages:
        files = files[: args.pages]
    # Kept after the run: the quality benchmark searches this index (bench/knowledge/quality.py).
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    LAB_DIR.mkdir(parents=True)
    piped = asyncio.run(pipeline(files, LAB_DIR))
    alone = bare(files)
    result = {
        "pages": len(files),
        "pipeline": piped,
        "bare_embedder": alone,
        "ratio": round(piped["chunks_per_s"] / alone["chunks_per_s"], 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
