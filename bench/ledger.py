"""Ledger benchmark: N synthetic rows through the batched writer into the default store (SQLite), then
bytes per row, the writer's sustained insert rate, and the time of the usage reports.

    python -m bench ledger [--rows 10000000]
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from ailab.config.models import ModelInfo
from ailab.db import make_engine, migrate
from ailab.gateway.types import Deployment, Usage
from ailab.ledger import LedgerWriter, PriceBook, UsageEvent, usage_report
from ailab.ledger.schema import ENDPOINT_CHAT
from ailab.server.state import all_migrations


def _deployments() -> list[Deployment]:
    models = [
        ("openai", "gpt-4o-mini", "openai"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("gemini", "gemini-2.5-flash", "google"),
        ("ollama", "llama3.2", None),
    ]
    out = []
    for i in range(20):
        provider, model, price = models[i % len(models)]
        info = ModelInfo(cost_per_hour=0.8) if provider == "ollama" else ModelInfo()
        out.append(
            Deployment(
                id=f"m{i}:{provider}/{model}#0",
                group=f"m{i}",
                provider=provider,
                provider_label=provider,
                price_id=price,
                model=model,
                api_base="http://x",
                api_key=None,
                info=info,
            )
        )
    return out


def _events(n: int, now: float, start: int, total: int) -> list[UsageEvent]:
    """Rows as a ledger receives them: in time order over 60 days; 100 keys, each of one user (40) and
    one project (8); 20 models; 2% errors."""
    rng = random.Random(start)
    deps = _deployments()
    span = 60 * 86400
    out = []
    for i in range(start, start + n):
        d = deps[rng.randrange(len(deps))]
        key = rng.randrange(100)
        out.append(
            UsageEvent(
                request_id=os.urandom(12).hex(),
                ts=now - span + span * i / total,
                endpoint=ENDPOINT_CHAT,
                group=d.group,
                deployment=d,
                key_id=f"key_{key}",
                user_id=f"usr_{key % 40}",
                project_id=f"prj_{key % 40 % 8}",
                usage=Usage(rng.randint(10, 4000), rng.randint(1, 800), rng.randint(0, 500)),
                latency_s=rng.random() * 3,
                ttft_s=None,
                status=200 if rng.random() > 0.02 else 502,
                error_type=None,
                stream=bool(i % 2),
            )
        )
    return out


def run(rows: int, out: Path | None = None, batch: int = 200_000) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ailab-ledger-bench-"))
    db = work / "ailab.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine, all_migrations())
    writer = LedgerWriter(engine, PriceBook(), work, batch_size=5000, flush_interval=0.01)
    writer.start()
    now = time.time()
    t0 = time.perf_counter()
    written = 0
    gen = 0.0
    while written < rows:
        g0 = time.perf_counter()
        chunk = _events(min(batch, rows - written), now, written, rows)
        gen += time.perf_counter() - g0
        for ev in chunk:
            writer.submit(ev)
        written += len(chunk)
        writer.flush(timeout=3600)
        print(f"  {written:,} rows", flush=True)
    writer.stop()
    elapsed = time.perf_counter() - t0 - gen
    size = sum(p.stat().st_size for p in work.glob("ailab.db*"))
    result: dict[str, Any] = {
        "rows": rows,
        "bytes_per_row": size / rows,
        "insert_rows_per_s": rows / elapsed,
        "db_bytes": size,
        "reports_s": {},
    }
    result["two_writers_rows_per_s"] = _two_writers(work / "ailab.db", min(rows, 1_000_000))
    for by in ("model", "key", "day", "provider", "project"):
        t = time.perf_counter()
        report = usage_report(engine, by, now - 30 * 86400)
        result["reports_s"][by] = time.perf_counter() - t
        assert sum(r.requests for r in report) > 0
    engine.dispose()
    print(
        f"\nledger: {rows:,} rows, {result['bytes_per_row']:.0f} bytes/row on disk, writer "
        f"{result['insert_rows_per_s']:,.0f} rows/s (pricing, interning and rollup included)"
    )
    print(
        f"  two writer processes on the same database (as with --workers 2): "
        f"{result['two_writers_rows_per_s']:,.0f} rows/s together"
    )
    for by, secs in result["reports_s"].items():
        print(f"  ailab usage --by {by} --since 30d: {secs * 1000:.0f} ms")
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def _writer_process(db: str, rows: int, seed: int, queue: Any, go: Any) -> None:
    engine = make_engine(f"sqlite:///{db}")
    writer = LedgerWriter(engine, PriceBook(), Path(db).parent, batch_size=5000, flush_interval=0.01)
    events = _events(rows, time.time(), seed, rows)
    queue.put("ready")
    go.wait()  # start together
    writer.start()
    t0 = time.perf_counter()
    for ev in events:
        writer.submit(ev)
    writer.flush(timeout=3600)
    queue.put(time.perf_counter() - t0)
    writer.stop()
    engine.dispose()


def _two_writers(db: Path, rows: int) -> float:
    """Each gateway worker owns a writer: their combined rate is the ledger's capacity under --workers 2."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queues = [ctx.Queue() for _ in range(2)]
    go = ctx.Event()
    procs = [
        ctx.Process(target=_writer_process, args=(str(db), rows // 2, 10**9 + i, q, go))
        for i, q in enumerate(queues)
    ]
    for p in procs:
        p.start()
    for q in queues:
        q.get()
    go.set()
    elapsed = max(q.get() for q in queues)
    for p in procs:
        p.join()
    return rows / elapsed
