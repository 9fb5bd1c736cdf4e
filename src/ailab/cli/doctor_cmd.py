"""`ailab doctor`: run the checks, one line each (status, name, what it saw, runbook); exit 1 on a fail."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def doctor(
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="run only this check (repeat, or comma-separate); see --list"),
    ] = None,
    list_checks: Annotated[bool, typer.Option("--list", help="list the checks and their runbooks")] = False,
    timeout: Annotated[float, typer.Option(help="seconds per network call")] = 2.0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Diagnose the lab: one check per runbook in docs/runbooks/, each pass / warn / fail / skip."""
    from ailab.ops import DoctorContext, all_checks, run_checks, select_checks

    if fmt not in ("table", "json"):
        raise typer.BadParameter("choose table or json", param_hint="--format")
    if list_checks:
        for c in all_checks():
            typer.echo(f"{c.name:<20} {c.title}  → {c.runbook}")
        return
    names = [n.strip() for item in only or [] for n in item.split(",") if n.strip()]
    try:
        select_checks(names)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--only") from None
    loaded = load_or_exit(config, data_dir)
    with DoctorContext(loaded, timeout=timeout) as ctx:
        results = run_checks(ctx, names or None)
    if fmt == "json":
        typer.echo(json.dumps([r.public() for r in results], indent=2))
    else:
        width = max((len(r.name) for r in results), default=0)
        for r in results:
            typer.echo(f"{MARK[r.status]}  {r.name:<{width}}  {r.saw}  → {r.runbook}")
            if r.fix and r.status in ("warn", "fail"):
                typer.echo(f"      {'':<{width}}  fix: {r.fix}")
        counts = {s: sum(r.status == s for r in results) for s in MARK}
        typer.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no checks run")
    if any(r.status == "fail" for r in results):
        raise typer.Exit(1)
