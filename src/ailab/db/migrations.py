"""Append-only, named migrations. Each is applied once and recorded in `ailab_migrations`.

Never edit a migration that has shipped; add a new one. Each pillar contributes its own list, and plugins
contribute theirs through the `ailab.migrations` entry-point group (an object or a callable returning a
list of `Migration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Engine, MetaData, String, Table, insert, select

ENTRY_POINT_GROUP = "ailab.migrations"


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


def plugin_migrations() -> list[Migration]:
    out: list[Migration] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        obj: Any = ep.load()
        steps = obj() if callable(obj) else obj
        out.extend(steps)
    return out
