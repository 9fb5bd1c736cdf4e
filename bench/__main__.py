"""`python -m bench [gateway|latency|journal|ledger|soak|console|charts|ab|all]`: run the benchmarks, print their tables (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["gateway", "journal", "ledger", "soak", "console", "charts", "ab", "latency", "all"],
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument(
        "--litellm",
        default=str(Path(".bench/litellm-venv/bin/litellm")),
        help="the litellm executable (make bench-deps installs 1.108.7 in .bench/)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds (journal; gateway: rounds of chat/messages/responses)",
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="ledger rows for the ledger benchmark")
    parser.add_argument(
        "--fill-only", action="store_true", help="ledger: fill the ledger and leave it, no timings"
    )
    parser.add_argument("--soak-seconds", type=int, default=300)
    parser.add_argument("--db", type=Path, help="charts: a ledger database `bench ledger` left behind")
    parser.add_argument("--base-src", type=Path, help="ab: the src/ folder of the tree to compare against")
    parser.add_argument("--conns", type=int, default=1, help="latency: wrk connections")
    parser.add_argument("--workers", type=int, default=1, help="latency: worker processes of each server")
    parser.add_argument(
        "--ailab-only",
        action="store_true",
        help="gateway: only ailab's chat, /v1/messages and /v1/responses rows at c=32 (and their ratios)",
    )
    args = parser.parse_args()
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    if args.which in ("gateway", "all"):
        from bench.gateway.run import run

        litellm = args.litellm if Path(args.litellm).exists() else None
        if litellm is None:
            print(f"note: {args.litellm} not found; LiteLLM left out (make bench-deps installs it)")
        run(args.seconds, litellm, out / "gateway.json", ailab_only=args.ailab_only, rounds=args.rounds)
    if args.which in ("latency", "all"):
        from bench.gateway.latency import run as latency_run

        litellm = args.litellm if Path(args.litellm).exists() else None
        base = args.base_src if args.which == "latency" else None
        latency_run(
            max(2, args.seconds // 2),
            args.rounds + 1,
            litellm,
            base,
            args.conns,
            args.workers,
            out / "latency.json",
        )
    if args.which in ("journal", "all"):
        from bench.gateway.journal import run as journal_run

        journal_run(args.seconds, args.rounds, out / "journal.json")
    if args.which in ("ledger", "all"):
        from bench.ledger import run as ledger_run

        ledger_run(args.rows, out / "ledger.json", fill_only=args.fill_only)
    if args.which in ("console", "all"):
        from bench.console_load import run as console_run

        console_run(args.rounds * 3, out / "console.json")
    if args.which == "ab":
        from bench.gateway.ab import run as ab_run

        ab_run(args.base_src, args.seconds, args.rounds * 2, out / "ab.json")
    if args.which == "charts":
        from bench.console import rerun

        rerun(args.db)
    if args.which in ("soak", "all"):
        from bench.soak import run as soak_run

        soak_run(args.soak_seconds, out / "soak.json")


if __name__ == "__main__":
    main()
