"""The access pillar's parts, built together from one engine and the access settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from ailab.access.audit import AuditLog
from ailab.access.cache import KeyCache
from ailab.access.denials import DenialGate
from ailab.access.identity import Identity
from ailab.access.keystore import KeyStore
from ailab.access.passwords import generate_password
from ailab.access.policy import Roles
from ailab.access.sessions import Sessions
from ailab.config import AccessSettings


@dataclass
class AccessService:
    roles: Roles
    audit: AuditLog
    identity: Identity
    keys: KeyStore
    sessions: Sessions
    cache: KeyCache
    denials: DenialGate

    @classmethod
    def build(cls, engine: Engine, settings: AccessSettings, audit: AuditLog | None = None) -> AccessService:
        """`audit`: the lab's (`AuditLog.of(engine, loaded)`: its key file and checkpoint)."""
        roles = Roles(settings.roles)
        audit = audit or AuditLog(engine)
        identity = Identity(engine, audit, roles)
        keys = KeyStore(engine, audit, identity)
        return cls(
            roles,
            audit,
            identity,
            keys,
            Sessions(engine, identity, audit, settings),
            KeyCache(identity, keys, roles),
            DenialGate(audit, settings.audit_repeat_window_seconds),
        )

    def bootstrap_admin(self, actor: str = "system") -> tuple[str, str] | None:
        """On a lab without users, create `admin` with a generated password; return it once."""
        if self.identity.users():
            return None
        password = generate_password()
        self.identity.create_user(actor, "admin", "admin", password)
        return "admin", password
