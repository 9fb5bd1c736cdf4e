"""`ailab audit`: read the audit log, or verify its hash chain."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from ailab.cli.access_cmd import access
from ailab.cli.common import ConfigOpt, DataDirOpt
from ailab.cli.names import Names, load_names


def audit(
    verify: Annotated[
        bool, typer.Option("--verify", help="check the hash chain; exit 1 naming the first bad row")
    ] = False,
    limit: Annotated[int, typer.Option(help="newest entries to show")] = 50,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show the newest audit entries, or verify the chain."""
    with access(config, data_dir) as a:
        if verify:
            check = a.audit.verify()
            if not check.ok:
                where = f"row {check.broken_id}" if check.broken_id is not None else "chain head"
                typer.echo(
                    f"audit chain BROKEN at {where}: {check.reason} ({check.rows} rows checked)", err=True
                )
                raise typer.Exit(1)
            how = "keyed with the lab's secret key" if check.keyed else "NOT keyed (plain SHA-256)"
            anchor = "matches its checkpoint" if check.checkpoint else "no checkpoint yet"
            typer.echo(f"audit chain OK ({check.rows} rows); {how}; {anchor}")
            return
        rows = [asdict(e) for e in a.audit.entries(limit)]
        names = load_names(a.identity.engine) if fmt == "table" else Names()
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    from ailab.cli.table import render, when

    typer.echo(
        render(
            [
                {**r, "time": when(r["ts_ms"]), "target": names.any(r["target"]), "detail": _detail(r, names)}
                for r in rows
            ],
            ["id", "time", "actor", "action", "target", "detail"],
            headers={"time": "time (utc)"},
        )
        if rows
        else "(none)"
    )


def _detail(row: dict[str, Any], names: Names) -> str:
    """`role=admin user=ann` rather than a JSON object of ids; nested values stay JSON; the target's id
    comes first, since the TARGET column shows its name."""
    target = row["target"]
    pairs = [("id", target)] if target is not None and names.any(target) != target else []
    pairs += [(k, names.any(v) if isinstance(v, str) else json.dumps(v)) for k, v in row["detail"].items()]
    return " ".join(f"{k}={v}" for k, v in pairs)
