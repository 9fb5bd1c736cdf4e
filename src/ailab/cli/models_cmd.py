"""`ailab models`: the model groups and deployments the gateway serves (never their keys)."""

from __future__ import annotations

from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit


def models(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List configured model groups and their deployments."""
    import json

    from ailab.config import ConfigError
    from ailab.gateway import build_deployments, default_registry

    loaded = load_or_exit(config, data_dir, read_only=True)
    try:
        groups = build_deployments(loaded.config, default_registry(), warn=_warn)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = [
        {
            "model": g,
            "deployment": d.id,
            "provider": d.provider_label,
            "upstream_model": d.model,
            "api_base": d.api_base or "",
            "mode": d.mode,
        }
        for g, deps in groups.items()
        for d in deps
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No models configured. Add a model_list to ailab.yaml (see docs/configuration.md).")
        return
    from ailab.cli.table import render

    typer.echo(render(rows, ["model", "deployment", "provider", "upstream_model", "api_base", "mode"]))


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)
