"""`ailab secrets`: store, read, list, rotate and delete secrets, and import `os.environ/` keys.

Values are read from stdin (or a hidden prompt) unless --value is given, so they need not appear on a
command line or in shell history. Every read and change is recorded in the audit log as `cli:<user>`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

if TYPE_CHECKING:
    from ailab.config import LoadedConfig
    from ailab.secrets import EnvRef, SecretStore

app = typer.Typer(
    help="Secrets for upstream API keys: referenced as secret/NAME in ailab.yaml.",
    no_args_is_help=True,
    add_completion=False,
)

NameArg = Annotated[str, typer.Argument(help="secret name (A-Z a-z 0-9 _ . -)", show_default=False)]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli:unknown"


@contextmanager
def _lab_store(loaded: LoadedConfig) -> Iterator[SecretStore]:
    """The lab's store with auditing; secret errors and bad names become exit code 2."""
    from ailab.access import MIGRATIONS as ACCESS_MIGRATIONS
    from ailab.access import AuditLog
    from ailab.db import database_url, make_engine, migrate
    from ailab.ledger import MIGRATIONS as LEDGER_MIGRATIONS
    from ailab.secrets import MIGRATIONS, SecretError, open_secret_store

    loaded.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(loaded))
    try:
        migrate(engine, [*LEDGER_MIGRATIONS, *ACCESS_MIGRATIONS, *MIGRATIONS])
        yield open_secret_store(
            loaded.config.secrets, engine, loaded.data_dir, audit=AuditLog.of(engine, loaded), actor=_actor()
        )
    except (SecretError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()


@contextmanager
def _store(config: Path | None, data_dir: Path | None) -> Iterator[SecretStore]:
    with _lab_store(load_or_exit(config, data_dir)) as store:
        yield store


def _read_value(name: str) -> str:
    stdin = sys.stdin
    if stdin.isatty():
        value: str = typer.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True)
        return value
    # One trailing newline is the shell's (`echo` or a file), not part of the secret.
    value = stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise _fail(f"no value for {name} on stdin (pipe it in, or pass --value)")
    return value


@app.command("set")
def set_(
    name: NameArg,
    value: Annotated[str | None, typer.Option("--value", help="the value (default: read from stdin)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Store a secret (a new version if it exists)."""
    with _store(config, data_dir) as store:
        version = store.set(name, value if value is not None else _read_value(name))
    typer.echo(f"stored secret {name} (version {version}); use it in ailab.yaml as secret/{name}", err=True)


@app.command("get")
def get(name: NameArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print a secret's value (the read is audited)."""
    with _store(config, data_dir) as store:
        value = store.get(name)
    if value is None:
        raise _fail(f"secret {name} not found")
    typer.echo(value)


@app.command("list")
def list_(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List secrets: names, versions and when they changed (never values)."""
    import json
    from datetime import UTC, datetime

    if fmt not in ("table", "json"):
        raise typer.BadParameter("choose table or json", param_hint="--format")
    with _store(config, data_dir) as store:
        metas = store.list()
    rows: list[dict[str, Any]] = [
        {
            "name": m.name,
            "version": m.version,
            "updated": datetime.fromtimestamp(m.updated_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_ms": m.updated_ms,
            "backend": m.backend,
        }
        for m in metas
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo("No secrets stored. Add one with `ailab secrets set NAME`.")
    else:
        from ailab.cli.table import render

        typer.echo(render(rows, ["name", "version", "updated", "backend"]))


@app.command("delete")
def delete(name: NameArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete a secret and all its versions."""
    with _store(config, data_dir) as store:
        found = store.delete(name)
    if not found:
        raise _fail(f"secret {name} not found")
    typer.echo(f"deleted secret {name}", err=True)


@app.command("rotate")
def rotate(
    name: NameArg,
    value: Annotated[str | None, typer.Option("--value", help="the new value")] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="generate a random value and print it once")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Store a new version of an existing secret (a running lab picks it up within refresh_interval)."""
    if generate and value is not None:
        raise typer.BadParameter("give --value or --generate, not both", param_hint="--generate")
    from ailab.secrets import SecretNotFound

    with _store(config, data_dir) as store:
        if store.version(name) is None:
            raise SecretNotFound(name)
        new = None if generate else (value if value is not None else _read_value(name))
        version, generated = store.rotate(name, new)
    typer.echo(f"rotated secret {name} to version {version}", err=True)
    if generated is not None:
        typer.echo("generated value (shown once):", err=True)
        typer.echo(generated)


@app.command("import-env")
def import_env(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Move `os.environ/NAME` model API keys into the store and rewrite them as `secret/NAME`."""
    from ailab.config import resolve_config_path

    path = resolve_config_path(config)
    if path is None:
        raise _fail("no config file: pass --config (or set AILAB_CONFIG) to the ailab.yaml to import from")
    text, refs = _scan(path)
    movable = [r for r in refs if r.movable]
    for ref in refs:
        if not ref.movable:
            typer.echo(
                f"kept   {ref.path}: os.environ/{ref.name} (secret/ references work only in "
                "model_list[*].litellm_params.api_key)"
            )
    if not movable:
        typer.echo(f"nothing to import: no os.environ/ model API keys in {path}")
        return
    with _placeholders({r.name for r in movable}):
        loaded = load_or_exit(path, data_dir)
    with _lab_store(loaded) as store:
        moved = _store_refs(store, movable)
    _rewrite_file(path, text, [r for r in movable if r.name in moved])


def _scan(path: Path) -> tuple[str, list[EnvRef]]:
    import yaml

    from ailab.secrets import find_env_refs

    try:
        text = path.read_text(encoding="utf-8")
        return text, find_env_refs(text)
    except OSError as exc:
        raise _fail(f"{path}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise _fail(f"{path}: not valid YAML: {exc}") from None


@contextmanager
def _placeholders(names: set[str]) -> Iterator[None]:
    """Let the config load although some referenced variables are unset: those keys are skipped
    anyway, and the loader would otherwise refuse the whole file."""
    import os

    unset = [n for n in names if n not in os.environ]
    for n in unset:
        os.environ[n] = ""
    try:
        yield
    finally:
        for n in unset:
            os.environ.pop(n, None)


def _store_refs(store: SecretStore, refs: list[EnvRef]) -> dict[str, int]:
    import os

    from ailab.secrets import validate_name

    moved: dict[str, int] = {}
    for name in dict.fromkeys(r.name for r in refs):
        where = ", ".join(r.path for r in refs if r.name == name)
        value = os.environ.get(name)
        try:
            validate_name(name)
        except ValueError as exc:
            typer.echo(f"skip   {where}: {exc}")
            continue
        if not value:
            typer.echo(f"skip   {where}: environment variable {name} is not set (or empty)")
            continue
        moved[name] = store.set(name, value)
        typer.echo(f"moved  {where}: os.environ/{name} -> secret/{name} (version {moved[name]})")
    return moved


def _rewrite_file(path: Path, text: str, refs: list[EnvRef]) -> None:
    import os
    import shutil

    from ailab.secrets import rewrite

    if not refs:
        return
    new_text, failed = rewrite(text, refs)
    for ref in failed:
        typer.echo(f"stored {ref.name} but could not rewrite {ref.path}: change it to secret/{ref.name}")
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    shutil.copymode(path, tmp)
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half of each
    typer.echo(f"rewrote {path} (previous version kept as {backup})")
