"""Ledger benchmark: N synthetic rows through the batched writer into the default store (SQLite), then
bytes per row, the writer's sustained insert rate, and the time of the usage reports.

    python -m bench ledger [--rows 10000000]
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ailab.config.models import ModelInfo, ServerSettings
from ailab.db import all_migrations, make_engine, migrate
from ailab.gateway.types import Deployment, Usage
from ailab.ledger import LedgerWriter, PriceBook, UsageEvent, usage_report
from ailab.ledger.schema import ENDPOINT_CHAT

WRITER_BATCH = inspect.signature(LedgerWriter).parameters["batch_size"].default  # the writer's own default
CONFIG_BATCH = ServerSettings().ledger_batch_size  # what `ailab up` passes it


@functools.cache
def _deployments() -> list[Deployment]:
    """Built once per process, as a server builds its deployments once at start."""
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


def _fill(
    engine: Any, work: Path, rows: int, now: float, batch_size: int, chunk: int, quiet: bool = False
) -> float:
    """Submit `rows` events in chunks, wait for the writer after each; the writer's seconds (generation not
    counted)."""
    writer = LedgerWriter(engine, PriceBook(), work, batch_size=batch_size, flush_interval=0.01)
    writer.start()
    t0 = time.perf_counter()
    written = 0
    gen = 0.0
    while written < rows:
        g0 = time.perf_counter()
        events = _events(min(chunk, rows - written), now, written, rows)
        gen += time.perf_counter() - g0
        for ev in events:
            writer.submit(ev)
        written += len(events)
        writer.flush(timeout=3600)
        if not quiet:
            print(f"  {written:,} rows", flush=True)
    writer.stop()
    return time.perf_counter() - t0 - gen


def run(rows: int, out: Path | None = None, batch: int = 200_000, fill_only: bool = False) -> dict[str, Any]:
    """The whole benchmark; `fill_only`: fill the ledger, print where it is and stop (time the charts on it
    later with `python -m bench charts --db PATH`, under the exclusive bench slot)."""
    work = Path(tempfile.mkdtemp(prefix="ailab-ledger-bench-"))
    db = work / "ailab.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine, all_migrations())
    now = time.time()
    elapsed = _fill(engine, work, rows, now, WRITER_BATCH, batch)
    size = sum(p.stat().st_size for p in work.glob("ailab.db*"))
    result: dict[str, Any] = {
        "rows": rows,
        "bytes_per_row": size / rows,
        "insert_rows_per_s": rows / elapsed,
        "writer_batch_size": WRITER_BATCH,
        "db_bytes": size,
        "reports_s": {},
    }
    if fill_only:
        engine.dispose()
        print(f"\nledger: {rows:,} rows in {db} ({result['insert_rows_per_s']:,.0f} rows/s)")
        print(f"  time the charts with `python -m bench charts --db {db}`; delete {work} after")
        return result
    if CONFIG_BATCH != WRITER_BATCH:  # what `ailab up` runs with until its default follows the writer's
        small = min(rows, 1_000_000)
        other = Path(tempfile.mkdtemp(prefix="ailab-ledger-bench-"))
        e2 = make_engine(f"sqlite:///{other / 'ailab.db'}")
        migrate(e2, all_migrations())
        result["config_batch_size"] = CONFIG_BATCH
        result["config_batch_rows_per_s"] = small / _fill(e2, other, small, now, CONFIG_BATCH, batch, True)
        e2.dispose()
        shutil.rmtree(other)
    from bench.console import chart_times  # before the two-writer run adds rows of its own

    result["console_p95_s"] = chart_times(engine, now)
    result["two_writers_rows_per_s"] = _two_writers(work / "ailab.db", min(rows, 1_000_000))
    for by in ("model", "key", "day", "provider", "project"):
        t = time.perf_counter()
        report = usage_report(engine, by, now - 30 * 86400)
        result["reports_s"][by] = time.perf_counter() - t
        assert sum(r.requests for r in report) > 0
    engine.dispose()
    print(
        f"\nledger: {rows:,} rows, {result['bytes_per_row']:.0f} bytes/row on disk, writer "
        f"{result['insert_rows_per_s']:,.0f} rows/s (pricing, interning and rollup included; "
        f"up to {WRITER_BATCH:,} rows per transaction)"
    )
    if "config_batch_rows_per_s" in result:
        print(
            f"  the same writer at ailab.ledger_batch_size={CONFIG_BATCH} (the config default), "
            f"{min(rows, 1_000_000):,} rows: {result['config_batch_rows_per_s']:,.0f} rows/s"
        )
    print(
        f"  two writer processes on the same database (as with --workers 2): "
        f"{result['two_writers_rows_per_s']:,.0f} rows/s together"
    )
    for by, secs in result["reports_s"].items():
        print(f"  ailab usage --by {by} --since 30d: {secs * 1000:.0f} ms")
    print(f"  the ledger is left at {db} for `python -m bench charts --db {db}`; delete {work} after")
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def _writer_process(db: str, rows: int, seed: int, queue: Any, go: Any) -> None:
    engine = make_engine(f"sqlite:///{db}")
    writer = LedgerWriter(engine, PriceBook(), Path(db).parent, batch_size=WRITER_BATCH, flush_interval=0.01)
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
