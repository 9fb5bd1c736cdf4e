"""Append-only, named migrations. Each is applied once and recorded in `ailab_migrations`.

Never edit a migration that has shipped; add a new one. Each pillar contributes its own list through the
`ailab.migrations` entry-point group (see `ailab.plugins`), as plugins do: an entry point names a list of
`Migration` or a callable returning one. Built-ins come first, in the order pyproject.toml declares them
(ledger, access, secrets, knowledge), then plugins by entry-point name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Engine, MetaData, String, Table, insert, select

from ailab import plugins

ENTRY_POINT_GROUP = plugins.MIGRATIONS


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


class MigrationError(RuntimeError):
    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"migration {name} failed: {type(cause).__name__}: {cause}")
        self.name = name


_meta = MetaData()
migrations_table = Table(
    "ailab_migrations",
    _meta,
    Column("name", String(200), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def applied_migrations(engine: Engine) -> list[str]:
    """Names recorded as applied, in the order they were applied."""
    with engine.begin() as conn:
        _meta.create_all(conn, tables=[migrations_table])
        rows = conn.execute(
            select(migrations_table.c.name).order_by(migrations_table.c.applied_at, migrations_table.c.name)
        )
        return [row[0] for row in rows]


def pending_migrations(engine: Engine, steps: Sequence[Migration]) -> list[Migration]:
    done = set(applied_migrations(engine))
    return [s for s in steps if s.name not in done]


def migrate(engine: Engine, steps: Sequence[Migration], *, atomic: bool = False) -> list[str]:
    """Apply the steps not yet applied, in order; return their names.

    `atomic` applies them all in one transaction, so a failing step leaves the schema as it was (the
    engine must run DDL inside transactions: PostgreSQL does; for SQLite use `transactional_ddl=True`).
    """
    todo = pending_migrations(engine, steps)
    if atomic:
        with engine.begin() as conn:
            for step in todo:
                _apply(conn, step)
        return [s.name for s in todo]
    for step in todo:
        with engine.begin() as conn:
            _apply(conn, step)
    return [s.name for s in todo]


def _apply(conn: Connection, step: Migration) -> None:
    try:
        step.apply(conn)
    except Exception as exc:  # re-raised with the step's name; the transaction rolls back
        raise MigrationError(step.name, exc) from exc
    conn.execute(insert(migrations_table).values(name=step.name, applied_at=datetime.now(UTC)))


def registered_migrations() -> list[Migration]:
    """Every migration of the lab and its plugins, in the order they are applied to a new database."""
    out: list[Migration] = []

    def add(plugin: plugins.Plugin, obj: Any) -> None:
        steps = list(obj() if callable(obj) else obj)
        bad = [s for s in steps if not isinstance(s, Migration)]
        if bad:
            raise TypeError(f"not a Migration: {bad[0]!r}")
        out.extend(steps)

    plugins.each(ENTRY_POINT_GROUP, add)
    return out
