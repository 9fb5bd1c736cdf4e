"""Top-level Typer app; one module per command group."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ailab.cli import (
    access_cmd,
    apps_cmd,
    audit_cmd,
    backup_cmd,
    ci_cmd,
    doctor_cmd,
    knowledge_cmd,
    knowledge_eval_cmd,
    login_cmd,
    models_cmd,
    secrets_cmd,
    stack_cmd,
    up_cmd,
    upgrade_cmd,
    usage_cmd,
)


def _flags_show_no_type() -> None:
    """Typer 0.29's rich help prints `<bool>` after every flag (`--help <bool>`, `--verify <bool>`) as if it
    took a value; Click's own plain help leaves flags bare. Flags take no value, so they show no type."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_ailab", False):
        return
    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else typed(self, ctx)

    display_type_rich._ailab = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()
app = typer.Typer(
    name="ailab",
    help="Local AI Lab: an OpenAI-compatible gateway, cost ledger and AI stack on your machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(up_cmd.up)
app.command("login")(login_cmd.login)
app.command("models")(models_cmd.models)
app.command("usage")(usage_cmd.usage)
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(access_cmd.users_app, name="users")
app.add_typer(access_cmd.projects_app, name="projects")
app.add_typer(access_cmd.keys_app, name="keys")
app.command("audit")(audit_cmd.audit)
app.command("doctor")(doctor_cmd.doctor)
app.command("collections")(knowledge_cmd.collections)
app.command("ingest")(knowledge_cmd.ingest)
app.command("search")(knowledge_cmd.search)
app.command("ask")(knowledge_cmd.ask)
app.add_typer(knowledge_cmd.knowledge_app, name="knowledge")
app.add_typer(apps_cmd.app, name="apps")
knowledge_eval_cmd.register(knowledge_cmd.knowledge_app)
stack_cmd.register(app)
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)
app.command("upgrade")(upgrade_cmd.upgrade)
app.add_typer(ci_cmd.config_app, name="config")
app.add_typer(ci_cmd.ci_app, name="ci")


@app.command("version")
def version() -> None:
    """Print the ailab version."""
    from ailab import __version__

    typer.echo(f"ailab {__version__}")


def _print_version(value: bool) -> None:
    if value:
        version()
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Local AI Lab: an OpenAI-compatible gateway, cost ledger and AI stack on your machine."""


def main() -> None:
    from ailab.db import private_umask

    private_umask()  # everything the lab writes (data dir, run files, journals) is owner-only
    app()
