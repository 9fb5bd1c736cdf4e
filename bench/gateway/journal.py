"""The usage journal's cost: ailab with and without it (`ailab.ledger_journal`), side by side in one run,
in alternating rounds so that a neighbour's load on the shared box falls on both alike. The same static nginx
upstream and wrk load as the gateway benchmark (2 workers, concurrency 32). Besides RPS it reports the CPU
time the lab's processes spent per request (user + system, all workers), which a busy neighbour disturbs
far less than throughput. Last, the journal's own cost per request, in process: `LedgerWriter.submit` with
and without it (best of several runs, so a busy neighbour does not count).

    python -m bench journal [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
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
    cpu: dict[str, dict[str, list[float]]] = {t: {m: [] for m in bodies} for t in TARGETS}
    try:
        for r in range(rounds):
            order = list(TARGETS) if r % 2 == 0 else list(reversed(TARGETS))
            for target in order:
                proc, url, _ = start_ailab(work, ports, journal=TARGETS[target])
                try:
                    for mode, body in bodies.items():
                        wrk(f"{url}/v1/chat/completions", body, auth, 32, 2)  # warm-up
                        before = cpu_seconds(proc.pid)
                        got = wrk(f"{url}/v1/chat/completions", body, auth, 32, seconds)
                        used = cpu_seconds(proc.pid) - before
                        assert got.errors + got.non2xx == 0, f"{target} {mode}: {got}"
                        rps[target][mode].append(got.rps)
                        cpu[target][mode].append(used / (got.rps * seconds) * 1e6)
                        print(
                            f"  round {r + 1} {target:10s} {mode:6s} {got.rps:8.0f} rps "
                            f"{cpu[target][mode][-1]:6.0f} CPU us/request",
                            flush=True,
                        )
                finally:
                    stop(proc)
    finally:
        stop(ngx)
    result = {"seconds": seconds, "rounds": rounds, "rps": rps, "cpu_us_per_request": cpu}
    result["submit_us"] = submit_cost()
    report(result)
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def submit_cost(events: int = 20_000, repeats: int = 7) -> dict[str, float]:
    """Microseconds per `LedgerWriter.submit` (pricing included: with the journal it moves there from the
    writer thread), with and without the journal; best of `repeats`."""
    from ailab.config.models import ModelInfo
    from ailab.db import make_engine, migrate
    from ailab.gateway.types import Deployment, Usage
    from ailab.ledger import MIGRATIONS, LedgerWriter, PriceBook, UsageEvent

    work = Path(tempfile.mkdtemp(prefix="ailab-bench-submit-"))
    engine = make_engine(f"sqlite:///{work / 'ledger.db'}")
    migrate(engine, MIGRATIONS)
    info = ModelInfo(input_cost_per_token=1e-7, output_cost_per_token=4e-7)
    dep = Deployment("d", "g", "openai", "openai", "openai", "bench", None, None, info=info)
    out: dict[str, float] = {}
    for target, journal in TARGETS.items():
        best = float("inf")
        for _ in range(repeats):
            writer = LedgerWriter(engine, PriceBook(), work, journal=journal)
            batch = [
                UsageEvent(
                    os.urandom(12).hex(),
                    time.time(),
                    1,
                    "g",
                    dep,
                    "k",
                    "u",
                    None,
                    Usage(12, 9),
                    0.002,
                    None,
                    200,
                    None,
                    False,
                )
                for _ in range(events)
            ]
            t0 = time.perf_counter()
            for ev in batch:
                writer.submit(ev)
            best = min(best, (time.perf_counter() - t0) / events * 1e6)
            writer.start()
            writer.stop()
        out[target] = best
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `ailab up` and every worker it started."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def report(result: dict[str, Any]) -> None:
    rps, cpu = result["rps"], result["cpu_us_per_request"]
    med = statistics.median
    print(
        "\n| mode (c=32, 2 workers) | RPS with the journal | RPS without | RPS ratio | CPU us/request with | without | CPU ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in rps["journal"]:
        on, off = med(rps["journal"][mode]), med(rps["no journal"][mode])
        con, coff = med(cpu["journal"][mode]), med(cpu["no journal"][mode])
        print(
            f"| {mode} | {on:.0f} | {off:.0f} | {on / off:.3f} | {con:.0f} | {coff:.0f} | {coff / con:.3f} |"
        )
