"""Keeps deployments' live API keys in step with the secret store.

`resolve_all` fills every `secret/NAME` key at startup; `run` then polls each secret's version (cheap:
no decryption, no value over the wire) and re-reads only the ones that changed, so a rotation reaches the
gateway within one interval without a restart. Logs name secrets and versions, never values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from ailab.secrets.base import SecretError, SecretNotFound, SecretStore

log = logging.getLogger("ailab.secrets")


class KeyedDeployment(Protocol):
    """What the refresher needs of a gateway deployment: its id, the secret it names, its live key."""

    api_key: str | None

    @property
    def id(self) -> str: ...
    @property
    def api_key_ref(self) -> str | None: ...


class SecretRefresher:
    def __init__(self, store: SecretStore, deployments: Iterable[KeyedDeployment]) -> None:
        self.store = store
        self._users: dict[str, list[KeyedDeployment]] = {}
        seen: set[int] = set()
        for dep in deployments:
            # An alias group lists the same Deployment object again; update it once.
            if dep.api_key_ref and id(dep) not in seen:
                seen.add(id(dep))
                self._users.setdefault(dep.api_key_ref, []).append(dep)
        self._versions: dict[str, int | None] = {}
        self._failing: str | None = None

    @property
    def names(self) -> list[str]:
        return sorted(self._users)

    def resolve_all(self) -> None:
        """Fill every referenced key; SecretNotFound names the first missing secret and who needs it."""
        for name in self.names:
            # Version first: if a rotation lands between the two reads, the next poll sees a newer one.
            version = self.store.version(name)
            value = self.store.get(name) if version is not None else None
            if value is None:
                raise SecretNotFound(name, used_by=", ".join(d.id for d in self._users[name]))
            self._apply(name, value)
            self._versions[name] = version

    def refresh_once(self) -> list[str]:
        """Re-read the secrets whose version moved since the last look; return their names."""
        changed: list[str] = []
        for name in self.names:
            version = self.store.version(name)
            if version == self._versions.get(name):
                continue
            value = self.store.get(name) if version is not None else None
            self._versions[name] = version
            if value is None:
                # Keep serving the last value: dropping the key would fail every request at once.
                log.warning("secret %s was deleted; its deployments keep the last value", name)
                continue
            self._apply(name, value)
            changed.append(name)
            log.info("secret %s rotated (version %d)", name, version)
        return changed

    def _apply(self, name: str, value: str) -> None:
        for dep in self._users[name]:
            dep.api_key = value

    async def run(self, interval: float) -> None:
        """Poll forever; a failure is logged (once per kind of failure) and the next poll goes on."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh_once)
            except Exception as exc:  # the loop must outlive any store failure; cancellation passes
                self._report(exc)
            else:
                if self._failing is not None:
                    log.info("secret refresh recovered")
                    self._failing = None

    def _report(self, exc: Exception) -> None:
        # SecretError messages are built to be value-free; anything else is named by its class only,
        # since a foreign exception's text could quote a credential.
        text = f"{type(exc).__name__}: {exc}" if isinstance(exc, SecretError) else type(exc).__name__
        if text != self._failing:
            log.warning("secret refresh failed: %s", text)
            self._failing = text
