"""`ailab apps list|show|validate|export|run`: apps as code (docs/apps.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

app = typer.Typer(help="Apps as code: list, show, validate, export to Dify, run.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="the app's name")]


def _apps(config: Path | None, data_dir: Path | None) -> Any:
    from ailab.apps import load_apps

    return load_apps(load_or_exit(config, data_dir, read_only=True))


def _spec(config: Path | None, data_dir: Path | None, name: str) -> Any:
    apps = _apps(config, data_dir)
    spec = apps.apps.get(name)
    if spec is None:
        known = ", ".join(sorted(apps.apps)) or "none"
        typer.echo(f"error: no app named {name!r} (apps: {known})", err=True)
        raise typer.Exit(2)
    return spec


@app.command("list")
def list_apps(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the apps of ailab.yaml and the apps folder."""
    from ailab.cli.table import render

    apps = _apps(config, data_dir)
    rows = [
        {
            "name": s.name,
            "model": s.model,
            "knowledge": ",".join(s.knowledge.collections) if s.knowledge else "",
            "project": s.project or "",
            "description": s.description[:60],
        }
        for s in apps.apps.values()
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        typer.echo(render(rows, ["name", "model", "knowledge", "project", "description"]))
    else:
        typer.echo("No apps: declare them under `apps:` in ailab.yaml or in the apps folder.")
    for p in apps.problems:
        typer.echo(f"warning: {p}", err=True)


@app.command("show")
def show(name: NameArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print an app's definition (YAML, defaults filled in)."""
    import yaml

    spec = _spec(config, data_dir, name)
    typer.echo(yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False).rstrip())


@app.command("validate")
def validate(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    files: Annotated[list[Path] | None, typer.Argument(help="app files (default: the lab's apps)")] = None,
) -> None:
    """Check every app: each problem with its file and field. Exit status 1 when there is one."""
    from ailab.apps import cross_check, load_files

    loaded = load_or_exit(config, data_dir, read_only=True)
    if files:
        apps = load_files(files)
    else:
        from ailab.apps import load_apps

        apps = load_apps(loaded)
    cfg = loaded.config
    groups = {m.model_name for m in cfg.model_list} | set(cfg.router_settings.model_group_alias)
    problems = [*apps.problems, *cross_check(apps, groups, _collections(loaded), None)]
    for p in problems:
        typer.echo(str(p), err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {len(apps.apps)} valid app(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(apps.apps)} app(s) valid: {', '.join(sorted(apps.apps)) or 'none'}")


def _collections(loaded: Any) -> set[str] | None:
    """The lab's collection names, when its data dir holds a knowledge catalog (else not checked)."""
    if not (loaded.data_dir / "knowledge").is_dir():
        return None
    from ailab.db import open_database
    from ailab.knowledge import open_catalog

    engine = open_database(loaded)
    try:
        return {c.name for c in open_catalog(loaded.data_dir / "knowledge", engine).collections()}
    finally:
        engine.dispose()


@app.command("export")
def export(
    name: NameArg,
    to: Annotated[str, typer.Option("--to", help="dify")] = "dify",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file to write (default: stdout)")] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(help="COLLECTION=DIFY_DATASET_ID, for each collection of the app")
    ] = None,
    plugin: Annotated[
        str | None, typer.Option(help="marketplace identifier of langgenius/openai_api_compatible")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export an app: `--to dify` writes a Dify DSL file (Dify's "Import DSL file" takes it)."""
    from ailab.apps import PLUGIN_IDENTIFIER, dump, export_app

    if to != "dify":
        raise typer.BadParameter("only dify is supported", param_hint="--to")
    ids: dict[str, str] = {}
    for item in dataset or []:
        coll, sep, ident = item.partition("=")
        if not sep or not coll or not ident:
            raise typer.BadParameter(f"{item!r}: use COLLECTION=DATASET_ID", param_hint="--dataset")
        ids[coll] = ident
    doc, notes = export_app(_spec(config, data_dir, name), ids, plugin or PLUGIN_IDENTIFIER)
    text = dump(doc)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
    for note in notes:
        typer.echo(f"note: {note}", err=True)


@app.command("run")
def run(
    name: NameArg,
    message: Annotated[str, typer.Argument(help="the user message")],
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE for a prompt variable")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json (the whole reply)")] = "text",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Call an app once, in process on this lab (ledgered like any call), as the local operator."""
    variables: dict[str, str] = {}
    for item in var or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--var")
        variables[key] = value
    loaded = load_or_exit(config, data_dir)
    body = {"messages": [{"role": "user", "content": message}], "variables": variables}
    status, reply = asyncio.run(_call(loaded, name, body))
    if status != 200:
        err = (reply.get("error") or {}) if isinstance(reply, dict) else {}
        typer.echo(f"error: {err.get('message') or reply}", err=True)
        raise typer.Exit(2 if status < 500 else 1)
    if fmt == "json":
        typer.echo(json.dumps(reply, indent=2, ensure_ascii=False))
        return
    choice = (reply.get("choices") or [{}])[0]
    message_out = choice.get("message") or {}
    typer.echo(message_out.get("content") or json.dumps(message_out.get("tool_calls"), indent=2))
    for c in reply.get("citations") or []:
        if c.get("cited"):
            typer.echo(f"[{c['n']}] {c.get('title') or ''} ({c.get('source')})")


async def _call(loaded: Any, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Through the lab's own ASGI app: the same route, access check and ledger as a client's call."""
    import httpx

    from ailab.access import ensure_master_key
    from ailab.server.app import LabApp

    lab = LabApp(loaded)
    await lab.state.start()
    try:
        master, _ = ensure_master_key(loaded.config.general_settings.master_key, loaded.data_dir)
        transport = httpx.ASGITransport(app=lab)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=600) as client:
            r = await client.post(
                f"/v1/apps/{name}/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {master}"},
            )
        return r.status_code, r.json()
    finally:
        if lab.state.ledger is not None:
            lab.state.ledger.flush()
        await lab.state.stop()


def _env_opt(var: str, text: str) -> Any:
    return typer.Option(envvar=var, help=f"{text} (${var})", show_default=False)


@app.command("provision-dify")
def provision_dify(
    dify_url: Annotated[str, _env_opt("DIFY_URL", "Dify's URL")],
    lab_url: Annotated[str, _env_opt("LAB_URL", "the lab's URL as Dify reaches it")],
    admin_key: Annotated[str, _env_opt("AILAB_MASTER_KEY", "a lab key that may read apps (apps.manage)")],
    dify_key: Annotated[str, _env_opt("LAB_OPENAI_API_KEY", "the lab key Dify calls the lab with")],
    admin_email: Annotated[str, _env_opt("DIFY_ADMIN_EMAIL", "Dify's admin account")],
    admin_password: Annotated[str, _env_opt("DIFY_ADMIN_PASSWORD", "its password")],
    plugin: Annotated[str | None, _env_opt("DIFY_PLUGIN", "openai_api_compatible identifier")] = None,
) -> None:
    """Wire Dify to the lab (provider, knowledge) and import the lab's apps (the dify-setup job)."""
    from ailab.apps import PLUGIN_IDENTIFIER, ProvisionError, Settings, provision

    s = Settings(
        dify_url.rstrip("/"),
        lab_url.rstrip("/"),
        admin_key,
        dify_key,
        admin_email,
        admin_password,
        plugin=plugin or PLUGIN_IDENTIFIER,
    )
    try:
        report = provision(s)
    except ProvisionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for item in report.created:
        typer.echo(f"created: {item}")
    for item in report.kept:
        typer.echo(f"already there: {item}")
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
