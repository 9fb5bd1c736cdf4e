"""Append-only, named migrations. Each is applied once and recorded in `ailab_migrations`.

Never edit a migration that has shipped; add a new one. Each pillar contributes its own list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, Engine, MetaData, String, Table, insert, select


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


_meta = MetaData()
migrations_table = Table(
    "ailab_migrations",
    _meta,
    Column("name", String(200), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def migrate(engine: Engine, steps: Sequence[Migration]) -> list[str]:
    """Apply the steps not yet applied, in order; return their names."""
    applied: list[str] = []
    with engine.begin() as conn:
        _meta.create_all(conn, tables=[migrations_table])
        done = {row[0] for row in conn.execute(select(migrations_table.c.name))}
    for step in steps:
        if step.name in done:
            continue
        with engine.begin() as conn:
            step.apply(conn)
            conn.execute(insert(migrations_table).values(name=step.name, applied_at=datetime.now(UTC)))
        applied.append(step.name)
    return applied
