"""Stack secrets: generated once into the lab's secret store (as `stack.<KEY>`), never defaulted.

Lab keys (`lab_key`) are real virtual keys of the lab, owned by a `stack` service user and named after
the component, so each component's usage and cost show up under its own name in the ledger.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ailab.stack.model import Component, SecretSpec

if TYPE_CHECKING:
    from ailab.config import LoadedConfig
    from ailab.secrets import SecretStore

STORE_PREFIX = "stack."
SERVICE_USER = "stack"


def store_name(key: str) -> str:
    return STORE_PREFIX + key


def generate(kind: str) -> str:
    if kind == "password":
        return secrets.token_urlsafe(24)
    if kind == "key32":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def specs_for(components: dict[str, Component]) -> dict[str, SecretSpec]:
    return {s.key: s for c in components.values() for s in c.secrets}


@dataclass
class StackSecrets:
    store: SecretStore
    mint_lab_key: Callable[[str], str]
    missing: list[SecretSpec] = field(default_factory=list)

    def ensure(self, specs: dict[str, SecretSpec]) -> dict[str, str]:
        """Every secret's value, generating (and storing) the ones that do not exist yet.

        User-provided secrets (tunnel tokens, auth keys) cannot be generated: they end up in `missing`.
        """
        values: dict[str, str] = {}
        self.missing = []
        for key, spec in sorted(specs.items()):
            value = self.store.get(store_name(key))
            if value is None:
                if spec.kind == "user":
                    self.missing.append(spec)
                    continue
                value = self.mint_lab_key(key) if spec.kind == "lab_key" else generate(spec.kind)
                self.store.set(store_name(key), value)
            values[key] = value
        return values


@contextmanager
def open_stack_secrets(loaded: LoadedConfig, actor: str = "cli:stack") -> Iterator[StackSecrets]:
    """The lab's secret store and key minting, on the lab's own database."""
    from ailab.access import AccessService, AuditLog, NotFound, generate_password
    from ailab.db import open_database
    from ailab.secrets import open_secret_store

    engine = open_database(loaded)
    try:
        access = AccessService.build(engine, loaded.config.access, AuditLog.of(engine, loaded))
        store = open_secret_store(
            loaded.config.secrets, engine, loaded.data_dir, audit=access.audit, actor=actor
        )

        def mint(key: str) -> str:
            try:
                access.identity.user(SERVICE_USER)
            except NotFound:
                # Never logs in: the password is random and thrown away; only its keys are used.
                access.identity.create_user(actor, SERVICE_USER, "user", generate_password())
            _, token = access.keys.create(actor, user=SERVICE_USER, name=f"stack:{key}")
            return token

        yield StackSecrets(store, mint)
    finally:
        engine.dispose()
