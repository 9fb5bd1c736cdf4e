"""The usage journal's cost: ailab with and without it (`ailab.ledger_journal`), side by side in one run,
in alternating rounds so that a neighbour's load on the shared box falls on both alike. The same static nginx
upstream and wrk load as the gateway benchmark (2 workers, concurrency 32).

    python -m bench journal [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import free_port, require_tools, wrk
from bench.gateway import nginx
from bench.gateway.run import KEY, Ports, _bodies, start_ailab, stop

TARGETS = {"journal": True, "no journal": False}


def run(seconds: int = 10, rounds: int = 3, out: Path | None = None) -> dict[str, Any]:
    require_tools("nginx", "wrk")
    work = Path(tempfile.mkdtemp(prefix="ailab-bench-journal-"))
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    ngx = nginx.start(nginx.config(work, ports.json, ports.sse, ports.proxy_json, ports.proxy_sse))
    time.sleep(0.5)
    auth = {"Authorization": f"Bearer {KEY}"}
    bodies = _bodies("bench-json", "bench-sse")
    rps: dict[str, dict[str, list[float]]] = {t: {m: [] for m in bodies} for t in TARGETS}
    try:
        for r in range(rounds):
            order = list(TARGETS) if r % 2 == 0 else list(reversed(TARGETS))
            for target in order:
                proc, url, _ = start_ailab(work, ports, journal=TARGETS[target])
                try:
                    for mode, body in bodies.items():
                        wrk(f"{url}/v1/chat/completions", body, auth, 32, 2)  # warm-up
                        got = wrk(f"{url}/v1/chat/completions", body, auth, 32, seconds)
                        assert got.errors + got.non2xx == 0, f"{target} {mode}: {got}"
                        rps[target][mode].append(got.rps)
                        print(f"  round {r + 1} {target:10s} {mode:6s} {got.rps:8.0f} rps", flush=True)
                finally:
                    stop(proc)
    finally:
        stop(ngx)
    result = {"seconds": seconds, "rounds": rounds, "rps": rps}
    report(result)
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def report(result: dict[str, Any]) -> None:
    rps = result["rps"]
    print("\n| mode (c=32, 2 workers) | RPS with the journal | RPS without | ratio (medians) |")
    print("|---|---:|---:|---:|")
    for mode in rps["journal"]:
        on, off = statistics.median(rps["journal"][mode]), statistics.median(rps["no journal"][mode])
        print(f"| {mode} | {on:.0f} | {off:.0f} | {on / off:.3f} |")
