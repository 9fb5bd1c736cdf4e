"""`python -m bench.knowledge [ingest|retrieval|scale|quality|generalize|all]` (see docs/benchmarks.md); `scale` (the
embedded store's ANN index at 100k chunks beside Milvus Lite and Qdrant local mode) is also in `all`."""

from __future__ import annotations

import sys


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    sys.argv = sys.argv[:1] + (sys.argv[2:] if which == "generalize" else [])
    if which in ("retrieval", "all"):
        from bench.knowledge.retrieval import main as retrieval

        retrieval()
    if which in ("scale", "all"):
        from bench.knowledge.scale import main as scale

        scale()
    if which in ("ingest", "all"):
        from bench.knowledge.ingest import main as ingest

        ingest()
    if which in ("quality", "all"):
        from bench.knowledge.quality import main as quality

        quality()
    if which == "generalize":  # not in `all`: embeds both corpora (minutes on a busy box)
        from bench.knowledge.generalize import main as generalize

        generalize()


if __name__ == "__main__":
    main()
