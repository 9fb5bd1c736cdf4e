"""`ailab config check` and `ailab ci init`: validate the config; a CI workflow for a lab's repository."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

config_app = typer.Typer(help="Check the lab's configuration.", no_args_is_help=True)
ci_app = typer.Typer(help="Continuous integration for a lab's own repository.", no_args_is_help=True)

# The doctor checks that need no running lab, upstream or network: what CI can check.
OFFLINE_CHECKS = "config,ci"


@config_app.command("check")
def check(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too (exit 1)")] = False,
) -> None:
    """Load ailab.yaml as `ailab up` would: errors exit 2 naming the key; with --strict, warnings exit 1.

    Warnings include model entries the lab would skip (a provider without an adapter, a `*` wildcard)."""
    from ailab.gateway import build_deployments, default_registry

    loaded = load_or_exit(config, data_dir)
    where = loaded.path or "defaults (no ailab.yaml)"
    skipped: list[str] = []
    build_deployments(loaded.config, default_registry(), warn=skipped.append)
    for message in skipped:
        typer.echo(f"warning: {where}: {message}", err=True)
    problems = len(loaded.warnings) + len(skipped)
    if problems and strict:
        typer.echo(f"{where}: {problems} warning(s) (--strict)", err=True)
        raise typer.Exit(1)
    served = len(loaded.config.model_list) - len(skipped)
    typer.echo(f"{where}: OK ({served} of {len(loaded.config.model_list)} model entries served)")


@ci_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="the lab's repository")] = Path("."),
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    install: Annotated[
        str | None, typer.Option(help="what CI pip-installs (default: this version of ailab)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing workflow")] = False,
) -> None:
    """Write .github/workflows/ailab.yml: validate the config, render Compose/Kubernetes, run doctor."""
    from ailab import DIST_NAME, __version__
    from ailab.stack import load_state

    loaded = load_or_exit(config, data_dir)
    target = directory / ".github" / "workflows" / "ailab.yml"
    if target.exists() and not force:
        typer.echo(f"error: {target} exists (use --force to overwrite)", err=True)
        raise typer.Exit(1)
    cfg = loaded.path.resolve().relative_to(directory.resolve()) if _inside(loaded.path, directory) else None
    template = files("ailab.ops").joinpath("templates/github-workflow.yml").read_text(encoding="utf-8")
    text = template.format(
        version=__version__,
        config=str(cfg) if cfg else "ailab.yaml",
        components=" ".join(load_state(loaded.data_dir).installed),
        install=install or f"{DIST_NAME}=={__version__}",
        doctor_checks=OFFLINE_CHECKS,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target}")


def _inside(path: Path | None, directory: Path) -> bool:
    return path is not None and path.resolve().is_relative_to(directory.resolve())
