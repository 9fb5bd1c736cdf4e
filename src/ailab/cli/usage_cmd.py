"""`ailab usage`: requests, tokens and cost from the ledger, grouped and filtered by time."""

from __future__ import annotations

from typing import Annotated, Any

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

_HEADERS = {
    "cost_usd": "cost",
    "prompt_tokens": "prompt",
    "completion_tokens": "completion",
    "cached_tokens": "cached",
}


def usage(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    by: Annotated[
        str, typer.Option(help="model, provider, deployment, key, user, project, error, app or day")
    ] = "model",
    since: Annotated[str, typer.Option(help="window: 30m, 12h, 7d, 4w or an ISO date")] = "7d",
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    project: Annotated[str | None, typer.Option(help="only this project (id)")] = None,
    user: Annotated[str | None, typer.Option(help="only this user (id)")] = None,
    key: Annotated[
        str | None,
        typer.Option(
            envvar="AILAB_API_KEY",
            help="report as this API key's owner sees it (their own usage, or "
            "their projects' for analysts); default: the local operator sees everything",
        ),
    ] = None,
) -> None:
    """Report usage and cost from the ledger."""
    import csv
    import io
    import json

    from ailab.db import open_database
    from ailab.ledger import parse_since, usage_report

    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter("choose table, json or csv", param_hint="--format")
    try:
        start = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    loaded = load_or_exit(config, data_dir, read_only=True)
    engine = open_database(loaded)
    try:
        where = _scope(loaded, engine, key, project, user)
        rows = [r.as_dict() for r in usage_report(engine, by, start, where=where)]
        names = _names(engine, by) if fmt == "table" and rows else None
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
        typer.echo(_table(rows, by, names))


def _names(engine, by: str):  # type: ignore[no-untyped-def]
    from ailab.cli.names import Names, load_names

    return load_names(engine) if by in ("user", "project", "key") else Names()


def _table(rows: list[dict[str, Any]], by: str, names: Any) -> str:
    """Names for ids, one number of decimals for the cost column, `—` where no request had a price, and a
    totals row; the unpriced column counts the requests whose cost is not in the sum."""
    from decimal import Decimal

    from ailab.cli.table import NONE, decimals_for, render, usd

    counts = [c for c in COLUMNS if c not in ("name", "cost_usd")]
    total: dict[str, Any] = {by: "TOTAL", **{c: sum(r[c] for r in rows) for c in counts}}
    total["cost_usd"] = str(sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0)))
    places = decimals_for([*(r["cost_usd"] for r in rows), total["cost_usd"]])

    def shown(r: dict[str, Any], label: str) -> dict[str, Any]:
        unknown = r["requests"] > 0 and r["unpriced"] == r["requests"] and Decimal(r["cost_usd"]) == 0
        return {
            **r,
            by: label,
            "cost_usd": NONE if unknown else usd(r["cost_usd"], places),
            "unpriced": r["unpriced"] or "",
        }

    cols = [by if c == "name" else c for c in COLUMNS]
    body = [shown(r, names.of(by, r[by])) for r in rows]
    out = render(body, cols, totals=shown(total, "TOTAL"), headers=_HEADERS)
    unpriced = total["unpriced"]
    if unpriced:
        out += f"\n{NONE} {unpriced} request(s) had no known price; their cost is not in the totals."
    return out


def _scope(loaded, engine, key: str | None, project: str | None, user: str | None) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """The same scoping as GET /api/usage: a key sees what its owner's role allows."""
    from ailab.access import AccessService, Authenticator, ensure_master_key, usage_scope

    if key is None:
        out: dict[str, set[str]] = {}
        if project:
            out["project"] = {project}
        if user:
            out["user"] = {user}
        return out
    access = AccessService.build(engine, loaded.config.access)
    access.cache.load()
    auth = Authenticator(ensure_master_key(loaded.config.general_settings.master_key, loaded.data_dir)[0])
    auth.resolvers.append(access.cache.resolve)
    principal = auth.authenticate(f"Bearer {key}".encode())
    if principal is None:
        typer.echo("error: the API key is not valid (unknown, revoked or expired)", err=True)
        raise typer.Exit(2)
    scope = usage_scope(principal, project, user)
    if not scope:
        typer.echo(f"error: {scope.decision.reason}", err=True)
        raise typer.Exit(2)
    return scope.where
