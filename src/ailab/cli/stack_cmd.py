"""Stack commands: the component catalog, install state, rendering (compose, Kubernetes), runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

if TYPE_CHECKING:
    from ailab.stack import Rendered, SecretSpec

NamesArg = Annotated[list[str], typer.Argument(help="components, groups (dify), phase1..phase4 or all")]
OptNamesArg = Annotated[
    list[str] | None, typer.Argument(help="what to render (default: what is installed)", show_default=False)
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="output directory")]

render_app = typer.Typer(help="Render the stack for a target.", no_args_is_help=True, add_completion=False)
export_app = typer.Typer(help="Export the stack for a platform.", no_args_is_help=True, add_completion=False)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def components(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """The catalog: every component with phase, image, install state and (native) health."""
    from ailab.cli.table import render
    from ailab.stack import component_catalog as catalog
    from ailab.stack import load_state, read_state, state_file

    loaded = load_or_exit(config, data_dir)
    state = load_state(loaded.data_dir)
    running = read_state(state_file(loaded.data_dir)).get("components", {})
    rows = []
    for comp in catalog().values():
        health = running.get(comp.name, {})
        rows.append(
            {
                "name": comp.name,
                "phase": str(comp.phase),
                "installed": "yes" if comp.name in state.installed else "",
                "health": ("healthy" if health.get("healthy") else "starting") if health.get("pid") else "",
                "native": "yes" if comp.native else "",
                "image": comp.image_ref,
                "description": comp.description,
            }
        )
    typer.echo(render(rows, ["name", "phase", "installed", "health", "native", "image", "description"]))


def install(
    names: NamesArg,
    port: Annotated[int | None, typer.Option(help="host port for the native runtime (one component)")] = None,
    gpu: Annotated[str | None, typer.Option(help="cpu, nvidia or amd (default: detected)")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="30-day spend the budget alert watches")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add components (with what they depend on) to the stack, and generate their secrets once."""
    from ailab.stack import (
        UnknownComponent,
        expand,
        load_state,
        open_stack_secrets,
        save_state,
        select,
        specs_for,
    )

    loaded = load_or_exit(config, data_dir)
    try:
        wanted = expand(names)
    except UnknownComponent as exc:
        raise _fail(str(exc)) from None
    if gpu is not None and gpu not in ("cpu", "nvidia", "amd"):
        raise typer.BadParameter("choose cpu, nvidia or amd", param_hint="--gpu")
    state = load_state(loaded.data_dir)
    state.installed = sorted(set(state.installed) | set(wanted))
    if port is not None:
        if len(names) != 1 or names[0] not in wanted:
            raise typer.BadParameter("--port needs exactly one component", param_hint="--port")
        state.native_ports[names[0]] = port
    state.gpu = gpu or state.gpu
    state.budget_usd = budget_usd if budget_usd is not None else state.budget_usd
    with open_stack_secrets(loaded) as stack:
        stack.ensure(specs_for(select(state.installed)))
        missing = stack.missing
    save_state(loaded.data_dir, state)
    typer.echo(f"installed: {', '.join(wanted)}")
    if "ailab" in wanted:
        typer.echo(
            "ailab is the lab's own gateway: LiteLLM-config compatible (model_list), no LiteLLM needed."
        )
    _warn_missing(missing)
    typer.echo("next: `ailab up --runtime native` (what runs on this host) or `ailab up --runtime docker`")


def uninstall(names: NamesArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Remove components from the stack (their data volumes and secrets are kept)."""
    from ailab.stack import UnknownComponent, load_state, members, save_state, select

    loaded = load_or_exit(config, data_dir)
    state = load_state(loaded.data_dir)
    try:
        named = set(members(names)) & set(state.installed)
    except UnknownComponent as exc:
        raise _fail(str(exc)) from None
    remaining = [n for n in state.installed if n not in named]
    needed = set(select(remaining)) & named
    if needed:
        raise _fail(f"still needed by other installed components: {', '.join(sorted(needed))}")
    state.installed = remaining
    state.routes = [r for r in state.routes if r.component in remaining]
    save_state(loaded.data_dir, state)
    typer.echo(f"uninstalled: {', '.join(sorted(named)) or 'nothing'} (data volumes and secrets kept)")


def expose(
    name: Annotated[str, typer.Argument(help="component to publish")],
    host: Annotated[str, typer.Option(help="public hostname, e.g. chat.example.org")],
    via: Annotated[str, typer.Option(help="traefik, cloudflared or tailscale")] = "traefik",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Publish a component on a public hostname (refused when nothing authenticates in front of it)."""
    from ailab.stack import PublicAccessError, PublicRoute, check_route, load_state, save_state
    from ailab.stack import component_catalog as catalog

    if via not in ("traefik", "cloudflared", "tailscale"):
        raise typer.BadParameter("choose traefik, cloudflared or tailscale", param_hint="--via")
    loaded = load_or_exit(config, data_dir)
    route = PublicRoute(name, host, via)  # type: ignore[arg-type]
    try:
        check_route(route, catalog(), loaded.config.access.sso)
    except PublicAccessError as exc:
        raise _fail(str(exc)) from None
    state = load_state(loaded.data_dir)
    state.routes = [r for r in state.routes if r.host != host] + [route]
    edge = ["traefik"] + ([via] if via != "traefik" else [])
    state.installed = sorted(set(state.installed) | {name, *edge})
    save_state(loaded.data_dir, state)
    typer.echo(f"route https://{host} -> {name} (via {via}); render again to apply")


def _warn_missing(missing: list[SecretSpec]) -> None:
    for spec in missing:
        typer.echo(
            f"warning: {spec.key} ({spec.description}) is not set: `ailab secrets set stack.{spec.key}`",
            err=True,
        )


def _report(rendered: Rendered, out: Path, what: str) -> None:
    typer.echo(f"wrote {what} to {out} ({len(rendered.written)} files)")
    _warn_missing(rendered.missing)


def _render(
    kind: Literal["compose", "kubernetes"],
    names: list[str] | None,
    out: Path | None,
    config: Path | None,
    data_dir: Path | None,
    replicas: int = 1,
) -> tuple[Path, Rendered]:
    from ailab.stack import PublicAccessError, ScaleError, UnknownComponent, expand, render_to

    loaded = load_or_exit(config, data_dir)
    target = out or (loaded.data_dir / "stack" / kind)
    try:
        rendered = render_to(loaded, kind, expand(names) if names else None, target, replicas)
    except (UnknownComponent, PublicAccessError, ScaleError) as exc:
        raise _fail(str(exc)) from None
    return target, rendered


@render_app.command("compose")
def render_compose(
    names: OptNamesArg = None, out: OutOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Compose file, .env (mode 0600), config dirs (Prometheus, rules, Grafana, Traefik routes)."""
    target, rendered = _render("compose", names, out, config, data_dir)
    _report(rendered, target, "a Docker Compose project")
    typer.echo(f"start it with: docker compose --project-directory {target} up -d")


@export_app.command("kubernetes")
def export_kubernetes(
    names: OptNamesArg = None,
    out: OutOpt = None,
    replicas: Annotated[
        int, typer.Option(help="gateway replicas (more than 1 needs postgres and redis in the stack)")
    ] = 1,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Plain manifests (kubectl apply -k manifests/) and a Helm chart (chart/), from the same objects."""
    target, rendered = _render("kubernetes", names, out, config, data_dir, replicas)
    _report(rendered, target, "Kubernetes manifests and a Helm chart")
    typer.echo(
        f"apply with: kubectl apply -k {target / 'manifests'}  (or: helm install ailab {target / 'chart'})"
    )


def status(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """What the native runtime is running: pid, health, restarts."""
    from ailab.cli.table import render
    from ailab.stack import pid_alive, read_state, state_file

    loaded = load_or_exit(config, data_dir)
    state = read_state(state_file(loaded.data_dir))
    if not pid_alive(state.get("supervisor_pid")):
        typer.echo("the native stack is not running (start it with `ailab up --runtime native`)")
        return
    rows = [
        {
            "name": name,
            "pid": str(c["pid"] or ""),
            "health": "healthy" if c["healthy"] else ("starting" if c["pid"] else "restarting"),
            "restarts": str(c["restarts"]),
            "port": str(c["port"] or ""),
        }
        for name, c in state.get("components", {}).items()
    ]
    typer.echo(render(rows, ["name", "pid", "health", "restarts", "port"]))


def logs(
    name: Annotated[str, typer.Argument(help="component")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="how many of the last lines")] = 100,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The last lines of a native component's log (for docker: `docker compose logs NAME`)."""
    from collections import deque

    from ailab.stack import stack_dir

    loaded = load_or_exit(config, data_dir)
    path = stack_dir(loaded.data_dir) / "logs" / f"{name}.log"
    if not path.exists():
        raise _fail(f"no log for {name} at {path} (is it installed and started natively?)")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in deque(fh, maxlen=lines):
            typer.echo(line.rstrip("\n"))


def down(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the native stack (all children, cleanly), or the Docker Compose project if one was started."""
    from ailab.stack import StackRuntimeError, compose_dir, down_native, run_compose

    loaded = load_or_exit(config, data_dir)
    try:
        if down_native(loaded.data_dir):
            typer.echo("stopped the native stack")
            return
        project = compose_dir(loaded.data_dir)
        if (project / "docker-compose.yml").exists():
            raise typer.Exit(run_compose(project, "down"))
    except StackRuntimeError as exc:
        raise _fail(str(exc)) from None
    typer.echo("nothing is running")


def up_stack(runtime: str, loaded) -> None:  # type: ignore[no-untyped-def]
    """`ailab up --runtime native|docker`."""
    from ailab.stack import StackRuntimeError, compose_dir, run_compose, up_native

    try:
        if runtime == "native":
            up_native(loaded)
            return
        from ailab.stack import load_state, render_to

        project = compose_dir(loaded.data_dir)
        state = load_state(loaded.data_dir)
        rendered = render_to(loaded, "compose", state.installed or ["ailab"], project)
        _warn_missing(rendered.missing)
        raise typer.Exit(run_compose(project, "up", "--detach", "--wait"))
    except StackRuntimeError as exc:
        raise _fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    app.command("components")(components)
    app.command("install")(install)
    app.command("uninstall")(uninstall)
    app.command("expose")(expose)
    app.add_typer(render_app, name="render")
    app.add_typer(export_app, name="export")
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("down")(down)
