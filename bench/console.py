"""The console's chart data over the benchmark's ledger: p95 of each query a usage page or the overview
runs, for a 90-day range (reports by model, by user and by day; the daily series) and the last 24 hours
(the hourly series), and the overview's live window. Called by `python -m bench ledger` on its ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ailab.console.data import live
from ailab.ledger import usage_report
from ailab.ledger.series import usage_series

REPEAT = 20
DAY = 86400


def _p95(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[min(len(times) - 1, int(0.95 * len(times)))]


def chart_times(engine: Any, now: float) -> dict[str, float]:
    since = now - 90 * DAY
    queries: dict[str, Callable[[], Any]] = {
        "90d by model": lambda: usage_report(engine, "model", since),
        "90d by user": lambda: usage_report(engine, "user", since),
        "90d by day": lambda: usage_report(engine, "day", since),
        "90d daily series": lambda: usage_series(engine, since, "day"),
        "24h hourly series": lambda: usage_series(engine, now - DAY, "hour"),
        "overview live window (5 min)": lambda: live(engine, {}),
    }
    out = {name: _p95(fn) for name, fn in queries.items()}
    print("  console chart data, p95 of 20 runs:")
    for name, secs in out.items():
        print(f"    {name}: {secs * 1000:.0f} ms")
    return out


def rerun(db: Path) -> dict[str, float]:
    """The chart queries again on a ledger `python -m bench ledger` left behind (on a quieter box)."""
    from ailab.db import make_engine

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        rows = c.exec_driver_sql("SELECT count(*), max(ts_ms) FROM ledger_requests").one()
    print(f"  ledger {db}: {rows[0]:,} rows")
    try:
        return chart_times(engine, rows[1] / 1000)
    finally:
        engine.dispose()
