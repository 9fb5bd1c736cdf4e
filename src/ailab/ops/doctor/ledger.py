"""Ledger checks: rows waiting on disk or lost, and models whose requests carry no cost."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, inspect, select

from ailab.gateway import Deployment, Usage, build_deployments, default_registry
from ailab.ledger import PriceBook, schema
from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn
from ailab.ops.doctor.context import DoctorContext, metric_sum

SPILL_GLOB = "ledger-spill-*.jsonl"  # written by ailab.ledger.writer into the data dir


def read_spills(data_dir: Path) -> tuple[int, int, list[str]]:
    """(files, rows, problems) for the spill files that the next `ailab up` will re-import."""
    files = sorted(data_dir.glob(SPILL_GLOB))
    rows = 0
    problems: list[str] = []
    for path in files:
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                problems.append(f"{path.name} line {n} is not JSON")
                break
            if not isinstance(rec, dict) or "row" not in rec or "dims" not in rec:
                problems.append(f"{path.name} line {n} is not a ledger row")
                break
            rows += 1
    return len(files), rows, problems


def dead_journals(data_dir: Path) -> int:
    """Journal segments no live process holds: left by a lab that was killed, replayed at its next start."""
    import os

    from ailab.ledger import SEGMENT_GLOB, journal_dir, try_lock

    n = 0
    for path in journal_dir(data_dir).glob(SEGMENT_GLOB):
        fd = try_lock(path)
        if fd is not None:
            os.close(fd)
            n += 1
    return n


@check("ledger", "No ledger rows lost or waiting on disk", "ledger-dropping-rows")
def ledger_check(ctx: DoctorContext) -> Outcome:
    files, rows, problems = read_spills(ctx.data_dir)
    samples = ctx.lab_metrics()
    dropped = metric_sum(samples, "ailab_ledger_dropped_rows_total")
    spilled = metric_sum(samples, "ailab_ledger_spilled_rows_total")
    depth = metric_sum(samples, "ailab_ledger_queue_depth")
    if dropped:
        return fail(
            f"the running lab lost {dropped:.0f} ledger row(s) (ailab_ledger_dropped_rows_total): "
            "the database refused them and the spill file could not be written",
            "make the database reachable and the data dir writable (disk space, permissions); "
            "the counter resets when the lab restarts",
        )
    if problems:
        return fail(
            f"spill file(s) the next start cannot re-import: {'; '.join(problems)}",
            "move the damaged file out of the data dir and re-import its good lines by hand "
            "(see the runbook); `ailab up` stops at a bad spill file",
        )
    live = "" if samples is None else " (the lab is running, so the database failed while it served)"
    if files:
        return warn(
            f"{rows} ledger row(s) in {files} spill file(s) in {ctx.data_dir} wait to be re-imported{live}",
            "make sure the database answers, then restart the lab (`ailab up` re-imports spill files)",
        )
    journals = dead_journals(ctx.data_dir) if samples is None else 0
    if journals:
        return warn(
            f"{journals} usage journal segment(s) of a lab that was killed wait in {ctx.data_dir}",
            "start the lab: `ailab up` replays them into the ledger (rows already there are skipped)",
        )
    if spilled:
        return warn(
            f"the running lab spilled {spilled:.0f} row(s) to disk since it started (database trouble)",
            "check the database; the rows are re-imported at the next start",
        )
    queue = ctx.config.ailab.ledger_queue_size
    if depth is not None and depth > queue / 2:
        return warn(
            f"{depth:.0f} usage events wait for the ledger writer (queue bound {queue})",
            "the database is slow: check its disk and load",
        )
    counters = "lab not running: counters not read" if samples is None else "0 rows dropped or spilled"
    return passed(f"no spill files; {counters}")


# -- cost data missing ----------------------------------------------------------------------------------


def unpriced_groups(ctx: DoctorContext, days: int) -> dict[str, tuple[int, int]] | None:
    """Model group → (unpriced requests, requests) over the last `days` days; None without a ledger."""
    engine = ctx.engine()
    if engine is None or not inspect(engine).has_table(schema.daily.name):
        return None
    since = int(ctx.clock() // 86400) - days + 1
    d, g = schema.daily, schema.dims
    stmt = (
        select(g.c.value, func.sum(d.c.unpriced), func.sum(d.c.requests))
        .select_from(d.join(g, g.c.id == d.c.group_dim))
        .where(d.c.day >= since)
        .group_by(g.c.value)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {str(name): (int(unpriced), int(total)) for name, unpriced, total in rows if unpriced}


def priced_now(deps: list[Deployment], book: PriceBook) -> bool:
    """Would a request to this group get a price with the current config (model_info or the library)?"""
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    return any(book.cost_pusd(dep, usage, 1.0, False) is not None for dep in deps)


@check("cost-data", "Every model in use has a price", "cost-data-missing")
def cost_check(ctx: DoctorContext) -> Outcome:
    days = ctx.thresholds.unpriced_days
    found = unpriced_groups(ctx, days)
    if found is None:
        return skip("no ledger yet (the lab has not served a request)")
    groups = build_deployments(ctx.config, default_registry(), warn=lambda _: None)
    book = PriceBook(ctx.config.general_settings.kwh_price)
    missing: list[str] = []
    fixed: list[str] = []
    for name, (unpriced, total) in sorted(found.items()):
        if name not in groups:
            continue  # no longer configured (or the built-in embedder, which runs locally): history only
        if priced_now(groups[name], book):
            fixed.append(name)
        else:
            missing.append(f"{name} ({unpriced} of {total} requests)")
    if missing:
        return warn(
            f"requests without a price in the last {days} days: {', '.join(missing)}",
            "give each model a price in model_info (input_cost_per_token / output_cost_per_token), or "
            "cost_per_hour / watts (+ kwh_price) for self-hosted models",
        )
    if fixed:
        return passed(f"every configured model has a price now (was missing for: {', '.join(fixed)})")
    return passed(f"every request of the last {days} days was priced")


CHECKS = [ledger_check, cost_check]
