"""Virtual API keys: create (shown once), list, revoke, limit. Stored hashed; audited; version-bumped."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ailab.access import schema as s
from ailab.access.audit import AuditLog
from ailab.access.identity import Identity, bump, now_ms
from ailab.access.keys import display_prefix, key_hash, new_id, new_key
from ailab.access.records import ApiKey, Conflict, Limits, NotFound


class KeyStore:
    def __init__(self, engine: Engine, audit: AuditLog, identity: Identity) -> None:
        self.engine = engine
        self.audit = audit
        self.identity = identity

    def create(
        self,
        actor: str,
        *,
        user: str,
        project: str | None = None,
        name: str | None = None,
        models: list[str] | None = None,
        expires_ms: int | None = None,
        limits: Limits | None = None,
        parent_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for `user` (optionally bound to one of the user's projects). Returns the key once.

        `models`: None allows every model, [] none. `parent_id`: the key that made this one (revoking it
        revokes this one too)."""
        owner = self.identity.user(user)
        project_id = None
        if project is not None:
            project_id = self.identity.project(project).id
            if project_id not in owner.projects:
                raise Conflict(f"user {owner.username!r} is not a member of project {project!r}")
        if expires_ms is not None and expires_ms <= now_ms():
            raise ValueError("expiry must be in the future")
        token = new_key()
        kid = new_id("key")
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.api_keys).values(
                    id=kid,
                    prefix=display_prefix(token),
                    key_hash=key_hash(token),
                    name=name,
                    user_id=owner.id,
                    project_id=project_id,
                    allowed_models=json.dumps(sorted(set(models))) if models is not None else None,
                    expires_ms=expires_ms,
                    revoked_ms=None,
                    created_ms=now_ms(),
                    parent_id=parent_id,
                    **(limits or Limits()).columns(),
                )
            )
            bump(conn)
        self.audit.record(
            actor,
            "key.create",
            kid,
            user=owner.id,
            project=project_id,
            models=models,
            expires_ms=expires_ms,
            parent=parent_id,
            **(limits or Limits()).public(),
        )
        return self.key(kid), token

    def keys(
        self, user_id: str | None = None, project_ids: set[str] | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        stmt = select(s.api_keys).order_by(s.api_keys.c.created_ms)
        if user_id is not None:
            stmt = stmt.where(s.api_keys.c.user_id == user_id)
        if project_ids is not None:
            stmt = stmt.where(s.api_keys.c.project_id.in_(sorted(project_ids)))
        if not include_revoked:
            stmt = stmt.where(s.api_keys.c.revoked_ms.is_(None))
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(stmt).mappings()]

    def key(self, kid: str) -> ApiKey:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.api_keys).where(s.api_keys.c.id == kid)).mappings().first()
        if row is None:
            raise NotFound("key", kid)
        return _key(row)

    def revoke(self, actor: str, kid: str) -> ApiKey:
        """Revoke the key and every key made from it (transitively): a child never outlives its parent."""
        key = self.key(kid)
        if key.revoked_ms is None:
            with self.engine.begin() as conn:
                doomed = _descendants(conn, kid)
                conn.execute(
                    update(s.api_keys)
                    .where(s.api_keys.c.id.in_(doomed), s.api_keys.c.revoked_ms.is_(None))
                    .values(revoked_ms=now_ms())
                )
                bump(conn)
            self.audit.record(
                actor, "key.revoke", kid, user=key.user_id, with_children=sorted(doomed - {kid})
            )
        return self.key(kid)

    def set_limits(self, actor: str, kid: str, limits: Limits) -> ApiKey:
        self.key(kid)
        with self.engine.begin() as conn:
            conn.execute(update(s.api_keys).where(s.api_keys.c.id == kid).values(**limits.columns()))
            bump(conn)
        self.audit.record(actor, "key.limits", kid, **limits.public())
        return self.key(kid)

    def active_with_hashes(self) -> list[tuple[ApiKey, str]]:
        """Unrevoked keys with their hashes, for the in-memory cache."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.api_keys).where(s.api_keys.c.revoked_ms.is_(None))).mappings().all()
        return [(_key(r), r["key_hash"]) for r in rows]

    def find(self, token: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.api_keys).where(s.api_keys.c.key_hash == key_hash(token)))
                .mappings()
                .first()
            )
        return _key(row) if row else None


def _descendants(conn: Connection, kid: str) -> set[str]:
    found, frontier = {kid}, {kid}
    while frontier:
        rows = conn.execute(select(s.api_keys.c.id).where(s.api_keys.c.parent_id.in_(sorted(frontier))))
        frontier = {r[0] for r in rows} - found
        found |= frontier
    return found


def _key(row: Any) -> ApiKey:
    models = json.loads(row["allowed_models"]) if row["allowed_models"] is not None else None
    return ApiKey(
        row["id"],
        row["prefix"],
        row["name"],
        row["user_id"],
        row["project_id"],
        tuple(models) if models is not None else None,
        row["expires_ms"],
        row["revoked_ms"],
        row["created_ms"],
        Limits.from_row(row),
        row["parent_id"],
    )
