"""Ids → the names people know (usernames, project names, key names), read once from the access tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Names:
    users: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def user(self, uid: str | None) -> str:
        return "" if uid is None else self.users.get(uid, uid)

    def project(self, pid: str | None) -> str:
        return "" if pid is None else self.projects.get(pid, pid)

    def key(self, kid: str | None) -> str:
        return "" if kid is None else self.keys.get(kid, kid)

    def of(self, kind: str, ident: str) -> str:
        """The name of a usage dimension value; other dimensions (model, day …) are names already."""
        table = {"user": self.users, "project": self.projects, "key": self.keys}.get(kind)
        return ident if table is None else table.get(ident, ident)

    def any(self, ident: str | None) -> str:
        """An id of any kind (an audit target) → its name; anything else is shown as it is."""
        if ident is None:
            return ""
        for table in (self.users, self.projects, self.keys):
            if ident in table:
                return table[ident]
        return ident


def load_names(engine: Any) -> Names:
    """Three small reads; a deleted user or key keeps showing as its id (the ledger outlives it)."""
    from sqlalchemy import select

    from ailab.access import schema as s

    with engine.connect() as conn:
        users = {r.id: r.username for r in conn.execute(select(s.users.c.id, s.users.c.username))}
        projects = {r.id: r.name for r in conn.execute(select(s.projects.c.id, s.projects.c.name))}
        k = s.api_keys.c
        keys = {r.id: r.name or f"{r.prefix}…" for r in conn.execute(select(k.id, k.name, k.prefix))}
    return Names(users, projects, keys)
