"""Options every command shares, so each acts on the same lab as `ailab up`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="AILAB_CONFIG", help="ailab.yaml (default: ./ailab.yaml if present)"
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="AILAB_DATA_DIR", help="where the lab keeps its state (default: ./.ailab)"
    ),
]


def load_or_exit(config: Path | None, data_dir: Path | None, read_only: bool = False):  # type: ignore[no-untyped-def]
    """`read_only`: the command never calls a provider, so unset credentials in the config do not matter."""
    from ailab.config import ConfigError, load_config

    try:
        loaded = load_config(config, data_dir, keep_unset_refs=read_only)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for w in loaded.warnings:
        typer.echo(f"warning: {w}", err=True)
    return loaded
