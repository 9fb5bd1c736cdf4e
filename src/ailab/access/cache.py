"""Principals for API keys, from memory: the gateway never touches the database per request.

Each process polls `access_state.version` (one indexed single-row read) every `refresh_interval`
and reloads all keys when it changed, so a revocation reaches every worker within that interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ailab.access.identity import Identity
from ailab.access.keys import key_hash
from ailab.access.keystore import KeyStore
from ailab.access.policy import Roles
from ailab.access.principal import Principal
from ailab.access.records import ApiKey, Limits, Project, User

log = logging.getLogger(__name__)


def _scope(kind: str, ident: str, limits: Limits) -> Any:
    from ailab.limits import Scope

    return Scope(kind, ident, limits.rpm, limits.tpm, limits.max_budget_pusd, limits.budget_duration)


def user_principal(user: User, roles: Roles) -> Principal:
    return Principal(
        id=user.id,
        kind="user",
        role=user.role,
        permissions=roles.permissions(user.role),
        user_id=user.id,
        projects=frozenset(user.projects),
        limits=(_scope("user", user.id, user.limits),),
    )


def key_principal(key: ApiKey, user: User, project: Project | None, roles: Roles) -> Principal:
    scopes = [_scope("key", key.id, key.limits), _scope("user", user.id, user.limits)]
    if project is not None:
        scopes.append(_scope("project", project.id, project.limits))
    return Principal(
        id=key.id,
        kind="key",
        role=user.role,
        permissions=roles.permissions(user.role),
        key_id=key.id,
        user_id=user.id,
        project_id=key.project_id,
        projects=frozenset({key.project_id}) if key.project_id else frozenset(user.projects),
        allowed_models=frozenset(key.allowed_models) if key.allowed_models is not None else None,
        expires_ms=key.expires_ms,
        limits=tuple(sc for sc in scopes if _limited(sc)),
    )


def _limited(scope: Any) -> bool:
    return any(v is not None for v in (scope.rpm, scope.tpm, scope.max_budget_pusd))


class KeyCache:
    def __init__(self, identity: Identity, keys: KeyStore, roles: Roles) -> None:
        self.identity = identity
        self.keystore = keys
        self.roles = roles
        self.by_hash: dict[str, Principal] = {}
        self.version = -1

    def resolve(self, token: str) -> Principal | None:
        principal = self.by_hash.get(key_hash(token))
        if principal is None:
            return None
        if principal.expires_ms is not None and principal.expires_ms <= time.time() * 1000:
            return None
        return principal

    def load(self) -> None:
        version = self.identity.version()
        users = {u.id: u for u in self.identity.users()}
        projects = {p.id: p for p in self.identity.projects()}
        table: dict[str, Principal] = {}
        for key, digest in self.keystore.active_with_hashes():
            user = users.get(key.user_id or "")
            if user is None or user.disabled:
                continue
            project = projects.get(key.project_id) if key.project_id else None
            table[digest] = key_principal(key, user, project, self.roles)
        self.by_hash = table  # swapped whole: readers never see a half-built table
        self.version = version

    def principals(self) -> list[Principal]:
        return list(self.by_hash.values())

    def refresh_if_changed(self) -> bool:
        if self.identity.version() == self.version:
            return False
        self.load()
        return True

    async def run(self, interval: float, on_change: Any = None) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(self.refresh_if_changed) and on_change is not None:
                    await on_change()
            except Exception as exc:  # keep serving from the last good table; say why
                log.warning("key cache refresh failed: %s", type(exc).__name__)
