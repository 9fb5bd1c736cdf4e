"""`ailab usage`: requests, tokens and cost from the ledger, grouped and filtered by time."""

from __future__ import annotations

from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

COLUMNS = [
    "name",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "unpriced",
]


def usage(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    by: Annotated[
        str, typer.Option(help="model, provider, deployment, key, user, project, error or day")
    ] = "model",
    since: Annotated[str, typer.Option(help="window: 30m, 12h, 7d, 4w or an ISO date")] = "7d",
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """Report usage and cost from the ledger."""
    import csv
    import io
    import json

    from ailab.ledger import parse_since, usage_report
    from ailab.server.state import open_database

    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter("choose table, json or csv", param_hint="--format")
    try:
        start = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    loaded = load_or_exit(config, data_dir)
    engine = open_database(loaded)
    try:
        rows = [r.as_dict() for r in usage_report(engine, by, start)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--by") from None
    finally:
        engine.dispose()
    cols = [by if c == "name" else c for c in COLUMNS]
    rows = [{(by if k == "name" else k): v for k, v in r.items()} for r in rows]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buf.getvalue().rstrip("\n"))
    elif not rows:
        typer.echo(f"No requests in the ledger since {since}.")
    else:
        from ailab.cli.table import render

        typer.echo(render(rows, cols))
