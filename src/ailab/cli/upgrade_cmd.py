"""`ailab upgrade`: backup, migrate, health gate, roll back (docs/operations.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit


def upgrade(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be applied; change nothing")
    ] = False,
    gate_timeout: Annotated[float, typer.Option(help="seconds the new version has to become ready")] = 60.0,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Bring this lab's data to the installed ailab: backup → migrations → health gate → rollback.

    Install the new version first (pip install -U local-ai-lab), then run this; the lab may be serving.
    """
    from ailab.ops import UpgradeError
    from ailab.ops import run_upgrade as run

    loaded = load_or_exit(config, data_dir)
    try:
        report = run(
            loaded, dry_run=dry_run, gate_timeout=gate_timeout, progress=lambda m: typer.echo(m, err=True)
        )
    except UpgradeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if fmt == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


def _print(report) -> None:  # type: ignore[no-untyped-def]
    previous = report.previous_version or "unknown"
    typer.echo(f"ailab {report.version} (data last served by {previous})")
    typer.echo(f"pending migrations: {', '.join(report.pending) or 'none'}")
    if report.backup:
        typer.echo(f"backup: {report.backup}")
    if report.applied:
        typer.echo(f"applied: {', '.join(report.applied)}")
    if report.gate:
        typer.echo(f"health gate: {report.gate}")
    typer.echo(f"outcome: {report.outcome}")
    if report.detail:
        typer.echo(report.detail)
    if report.serving:
        typer.echo(f"serving: {report.serving}")
