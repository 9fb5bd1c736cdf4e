"""The time budget of the gateway's hot path: py-spy samples `ailab up` (1 worker, a key with rpm/tpm) or the
bare Python pass-through while `wrk -c1` runs, and each sample is charged to the innermost frame that belongs
to a part of the request (server protocol, auth, limits, upstream client, metrics, ledger …). Shares of the
samples times the CPU time a request costs give microseconds per request.

    python -m bench.gateway.budget [--target ailab|floor] [--seconds 10] [--rate 500]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import free_port, require_tools
from bench.gateway import nginx
from bench.gateway.latency import start_ailab, start_passthrough, stop, wrk_sample

# (part, frame pattern), tried from the innermost frame outwards: the first match takes the sample.
PARTS = [
    ("ledger writer thread (prices, rows, SQLite)", r"Thread\._bootstrap|LedgerWriter\._run"),
    ("ledger hand-off (event, price, journal append)", r"LedgerWriter\.submit|journal|UsageEvent"),
    ("metrics (prometheus)", r"prometheus_client|_observe|_labelled|MetricWrapper"),
    ("limits (reserve, settle, rate headers)", r"ailab/gateway/limits\.py|ailab/limits/"),
    ("auth", r"authenticate|ailab/access/"),
    ("validation + JSON parse", r"ailab/gateway/validate|read_json|orjson"),
    ("upstream client (aiohttp)", r"aiohttp/|yarl/|multidict|ailab/gateway/providers/"),
    ("routing + cycle", r"ailab/gateway/router\.py|ailab/gateway/cycle\.py|ailab/gateway/deployments"),
    ("response + endpoint glue", r"ailab/gateway/asgi\.py|ailab/gateway/endpoints|ailab/gateway/api\.py"),
    ("server protocol (uvicorn + httptools)", r"uvicorn/|httptools|slowclients|ailab/server/app\.py"),
    ("event loop (uvloop, asyncio; native I/O)", r"asyncio/|uvloop|runners\.py"),
]


def budget(raw: Path) -> dict[str, int]:
    parts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        for frame in reversed(stack.split(";")):
            part = next((name for name, rx in PARTS if re.search(rx, frame)), None)
            if part is not None:
                parts[part] += int(count)
                break
        else:
            parts["other"] += int(count)
    return dict(parts.most_common())


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.gateway.budget")
    ap.add_argument("--target", choices=["ailab", "floor"], default="ailab")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples a second")
    args = ap.parse_args()
    require_tools("nginx", "wrk", "py-spy")
    work = Path(tempfile.mkdtemp(prefix="ailab-budget-"))
    up, sse, pj, ps = free_port(), free_port(), free_port(), free_port()
    ngx = nginx.start(nginx.config(work, up, sse, pj, ps))
    time.sleep(0.5)
    target = start_ailab(work, "ailab", up, 1, None) if args.target == "ailab" else start_passthrough(up, 1)
    raw = work / "py-spy.txt"
    try:
        wrk_sample(target, 2, 1)  # warm-up
        bare = wrk_sample(target, args.seconds, 1)  # unprofiled: the CPU a request costs
        assert target.proc is not None
        argv = ["py-spy", "record", "--nonblocking", "-r", str(args.rate), "-f", "raw", "-o", str(raw)]
        spy = subprocess.Popen([*argv, "-d", str(args.seconds + 2), "-p", str(target.proc.pid)])
        time.sleep(1)
        wrk_sample(target, args.seconds, 1)
        spy.wait()
    finally:
        stop(target.proc)
        stop(ngx)
    parts = budget(raw)
    total = sum(parts.values())
    cpu = bare.cpu_us or 0.0
    print(
        f"\n{args.target}: p50 {bare.p50_ms:.3f} ms, {bare.rps:.0f} rps, CPU {cpu:.0f} µs a request (unprofiled)"
    )
    print("| part | share of samples | µs a request |")
    print("|---|---:|---:|")
    for name, n in parts.items():
        print(f"| {name} | {n / total * 100:.1f} % | {n / total * cpu:.0f} |")


if __name__ == "__main__":
    main()
