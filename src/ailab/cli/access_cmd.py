"""`ailab users|projects|keys`: manage identity from the machine the lab runs on.

The CLI acts as the local operator (whoever can read the data dir is trusted, like the master key) and is
audited as `cli:<os user>`. Every command takes --config/--data-dir like `ailab up`.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit

if TYPE_CHECKING:
    from ailab.access import AccessService

users_app = typer.Typer(
    help="Users: add, list, change role, disable, set password, delete.", no_args_is_help=True
)
projects_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
keys_app = typer.Typer(help="Virtual API keys: create (shown once), list, revoke.", no_args_is_help=True)
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]
BudgetOpt = Annotated[str | None, typer.Option(help="max budget in USD, e.g. 25.00")]
DurationOpt = Annotated[
    str | None, typer.Option(help="budget period: daily, weekly or monthly (default: lifetime)")
]
RpmOpt = Annotated[int | None, typer.Option(help="requests per minute")]
TpmOpt = Annotated[int | None, typer.Option(help="tokens per minute")]


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


@contextmanager
def access(config: Path | None, data_dir: Path | None) -> Iterator[AccessService]:
    from ailab.access import AccessService, AuditLog, Conflict, NotFound
    from ailab.db import open_database

    loaded = load_or_exit(config, data_dir)
    engine = open_database(loaded)
    try:
        yield AccessService.build(engine, loaded.config.access, AuditLog.of(engine, loaded))
    except (NotFound, Conflict, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


def emit(
    rows: list[dict[str, Any]], fmt: str, columns: list[str], shown: list[dict[str, Any]] | None = None
) -> None:
    """json keeps the raw rows (ids, epoch ms); the table shows `shown`, their human form, if given."""
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    from ailab.cli.table import render

    typer.echo(render(rows if shown is None else shown, columns) if rows else "(none)")


def _names(a: AccessService) -> Any:
    from ailab.cli.names import load_names

    return load_names(a.identity.engine)


def _limits_view(pub: dict[str, Any]) -> dict[str, Any]:
    """`$25.00 monthly`, rpm and tpm as they are; blank where there is no limit."""
    from ailab.cli.table import usd

    budget = pub.get("max_budget_usd")
    text = (
        ""
        if budget is None
        else usd(budget, 2) + (f" {pub['budget_duration']}" if pub.get("budget_duration") else "")
    )
    return {"budget": text, "rpm": pub.get("rpm"), "tpm": pub.get("tpm")}


def limits(budget: str | None, duration: str | None, rpm: int | None, tpm: int | None) -> Any:
    from ailab.access import Limits

    return Limits(Limits.usd_to_pusd(budget), duration, rpm, tpm)


# -- users ---------------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, analyst, user or a custom role")] = "user",
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user; prints a generated password once unless --password-stdin."""
    from ailab.access import generate_password

    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
    with access(config, data_dir) as a:
        user = a.identity.create_user(cli_actor(), username, role, password)
    typer.echo(f"created user {user.username} ({user.id}, role {user.role})")
    if not password_stdin:
        typer.echo(f"password (shown once): {password}")


@users_app.command("list")
def users_list(fmt: FormatOpt = "table", config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List users."""
    with access(config, data_dir) as a:
        rows = [u.public() for u in a.identity.users()]
        names = _names(a)
    from ailab.cli.table import when

    shown = [
        {
            **r,
            **_limits_view(r),
            "status": "disabled" if r["disabled"] else "active",
            "projects": [names.project(p) for p in r["projects"]],
            "created": when(r["created_ms"]),
        }
        for r in rows
    ]
    cols = ["username", "role", "status", "projects", "budget", "rpm", "tpm", "created", "id"]
    emit(rows, fmt, cols, shown)


@users_app.command("set")
def users_set(
    username: str,
    role: Annotated[str | None, typer.Option()] = None,
    disabled: Annotated[bool | None, typer.Option("--disabled/--enabled")] = None,
    budget: BudgetOpt = None,
    budget_duration: DurationOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a user's role, enable/disable it, or set its budget and rate limits."""
    has_limits = any(v is not None for v in (budget, budget_duration, rpm, tpm))
    with access(config, data_dir) as a:
        user = a.identity.update_user(
            cli_actor(),
            username,
            role=role,
            disabled=disabled,
            limits=limits(budget, budget_duration, rpm, tpm) if has_limits else None,
        )
    typer.echo(json.dumps(user.public()))


@users_app.command("passwd")
def users_passwd(username: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Set a new password (read from stdin, or generated and shown once when stdin is a terminal)."""
    from ailab.access import generate_password

    given = None if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    password = given or generate_password()
    with access(config, data_dir) as a:
        a.identity.update_user(cli_actor(), username, password=password)
    typer.echo("password changed" + ("" if given else f"; new password (shown once): {password}"))


@users_app.command("delete")
def users_delete(username: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete a user with its keys, sessions and memberships."""
    with access(config, data_dir) as a:
        a.identity.delete_user(cli_actor(), username)
    typer.echo(f"deleted user {username}")


# -- projects ------------------------------------------------------------------------------------------


@projects_app.command("add")
def projects_add(name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create a project."""
    with access(config, data_dir) as a:
        p = a.identity.create_project(cli_actor(), name)
    typer.echo(f"created project {p.name} ({p.id})")


@projects_app.command("list")
def projects_list(fmt: FormatOpt = "table", config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List projects with their members."""
    with access(config, data_dir) as a:
        rows = [p.public() for p in a.identity.projects()]
        names = _names(a)
    from ailab.cli.table import when

    shown = [
        {
            **r,
            **_limits_view(r),
            "members": [names.user(u) for u in r["members"]],
            "created": when(r["created_ms"]),
        }
        for r in rows
    ]
    emit(rows, fmt, ["name", "members", "budget", "rpm", "tpm", "created", "id"], shown)


@projects_app.command("add-member")
def projects_add_member(
    project: str, user: str, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Add a user to a project."""
    with access(config, data_dir) as a:
        a.identity.add_member(cli_actor(), project, user)
    typer.echo(f"{user} is a member of {project}")


@projects_app.command("remove-member")
def projects_remove_member(
    project: str, user: str, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Remove a user from a project (its keys bound to the project are revoked)."""
    with access(config, data_dir) as a:
        a.identity.remove_member(cli_actor(), project, user)
    typer.echo(f"{user} removed from {project}")


@projects_app.command("set")
def projects_set(
    project: str,
    budget: BudgetOpt = None,
    budget_duration: DurationOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a project's budget and rate limits."""
    with access(config, data_dir) as a:
        p = a.identity.update_project(cli_actor(), project, limits(budget, budget_duration, rpm, tpm))
    typer.echo(json.dumps(p.public()))


@projects_app.command("delete")
def projects_delete(project: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete a project (its keys are deleted too)."""
    with access(config, data_dir) as a:
        a.identity.delete_project(cli_actor(), project)
    typer.echo(f"deleted project {project}")


# -- keys ----------------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="owner (username or id)")],
    project: Annotated[str | None, typer.Option(help="bind the key to one of the user's projects")] = None,
    name: Annotated[str | None, typer.Option()] = None,
    models: Annotated[str | None, typer.Option(help="comma-separated model names the key may use")] = None,
    expires_days: Annotated[float | None, typer.Option(help="expire after this many days")] = None,
    budget: BudgetOpt = None,
    budget_duration: DurationOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    expires = int((time.time() + expires_days * 86400) * 1000) if expires_days else None
    with access(config, data_dir) as a:
        key, token = a.keys.create(
            cli_actor(),
            user=user,
            project=project,
            name=name,
            models=[m.strip() for m in models.split(",")] if models else None,
            expires_ms=expires,
            limits=limits(budget, budget_duration, rpm, tpm),
        )
    typer.echo(f"created key {key.id} for {user}" + (f" in project {project}" if project else ""))
    typer.echo(f"key (shown once): {token}")


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option()] = None,
    include_revoked: Annotated[bool, typer.Option()] = False,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    with access(config, data_dir) as a:
        user_id = a.identity.user(user).id if user else None
        rows = [k.public() for k in a.keys.keys(user_id=user_id, include_revoked=include_revoked)]
        names = _names(a)
    emit(
        rows,
        fmt,
        _KEY_COLUMNS + (["revoked"] if include_revoked else []),
        [_key_view(r, names) for r in rows],
    )


_KEY_COLUMNS = [
    "name",
    "prefix",
    "user",
    "project",
    "models",
    "budget",
    "rpm",
    "tpm",
    "expires",
    "created",
    "id",
]


def _key_view(r: dict[str, Any], names: Any) -> dict[str, Any]:
    from ailab.cli.table import when

    return {
        **r,
        **_limits_view(r),
        "user": names.user(r["user_id"]),
        "project": names.project(r["project_id"]),
        "models": "all" if r["allowed_models"] is None else (r["allowed_models"] or "none"),
        "expires": when(r["expires_ms"]) or "never",
        "created": when(r["created_ms"]),
        "revoked": when(r["revoked_ms"]),
    }


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke a key; every gateway worker stops accepting it within a second."""
    with access(config, data_dir) as a:
        a.keys.revoke(cli_actor(), key_id)
    typer.echo(f"revoked {key_id}")
