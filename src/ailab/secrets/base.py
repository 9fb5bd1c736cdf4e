"""The secret-store contract shared by every backend: names, metadata, errors and audited operations.

Backends implement four primitives (`_read`, `_write`, `_remove`, `_version`, `_list`); `StoreBase` adds
what every backend must do identically: name validation, value generation on rotation and the audit trail.
No message, log line or audit detail ever carries a secret value or a credential.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class Auditor(Protocol):
    """Where audited operations are recorded: the access pillar's `Auditor`, which itself keys its MACs
    with the secret store's key file (so the secrets pillar sits below access and names only this)."""

    def record(self, actor: str, action: str, target: str | None = None, **detail: Any) -> None: ...


class SecretError(Exception):
    """A secret operation failed. Messages name secrets and places, never values or tokens."""


class SecretNotFound(SecretError):
    def __init__(self, name: str, used_by: str | None = None) -> None:
        self.name = name
        self.used_by = used_by
        where = f" (referenced by deployment {used_by} as secret/{name})" if used_by else ""
        super().__init__(f"secret {name} not found{where}; store it with `ailab secrets set {name}`")


class SecretStoreUnavailable(SecretError):
    """The backend cannot be reached or refuses us (network, auth, policy)."""


@dataclass(frozen=True)
class SecretMeta:
    name: str
    version: int
    updated_ms: int
    backend: str


@runtime_checkable
class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> int: ...

    def delete(self, name: str) -> bool: ...

    def list(self) -> list[SecretMeta]: ...

    def rotate(self, name: str, value: str | None = None) -> tuple[int, str | None]: ...

    def version(self, name: str) -> int | None: ...


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"invalid secret name {name!r}: use 1 to 128 characters from A-Z a-z 0-9 _ . -")
    if set(name) == {"."}:
        # "." and ".." would be path segments in Vault and in URLs, not names.
        raise ValueError(f"invalid secret name {name!r}: a name cannot consist of dots only")
    return name


def _validate_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"secret {name}: value must be a string, got {type(value).__name__}")
    if not value:
        # An empty API key is always a mistake (usually an empty stdin), never a value to keep.
        raise ValueError(f"secret {name}: value must not be empty")
    return value


def generate_value() -> str:
    return secrets.token_urlsafe(32)


class StoreBase(ABC):
    """Template for backends: public, audited operations on top of backend primitives."""

    backend: str = ""

    def __init__(self, audit: Auditor | None = None, actor: str = "system") -> None:
        self.audit = audit
        self.actor = actor

    # -- primitives -----------------------------------------------------------------------------------

    @abstractmethod
    def _read(self, name: str) -> tuple[str, int] | None:
        """The current value and its version, or None if there is no such secret."""

    @abstractmethod
    def _write(self, name: str, value: str) -> int:
        """Store a new version; return its number."""

    @abstractmethod
    def _remove(self, name: str) -> int | None:
        """Delete every version; return the version that was current, or None if there was none."""

    @abstractmethod
    def _version(self, name: str) -> int | None: ...

    @abstractmethod
    def _list(self) -> list[SecretMeta]: ...

    # -- the SecretStore protocol ---------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        found = self._read(validate_name(name))
        self._audit("secret.read", name, found[1] if found else None)
        return found[0] if found else None

    def set(self, name: str, value: str) -> int:
        version = self._write(validate_name(name), _validate_value(name, value))
        self._audit("secret.write", name, version)
        return version

    def delete(self, name: str) -> bool:
        previous = self._remove(validate_name(name))
        if previous is not None:
            self._audit("secret.delete", name, previous)
        return previous is not None

    def list(self) -> list[SecretMeta]:
        return sorted(self._list(), key=lambda m: m.name)

    def rotate(self, name: str, value: str | None = None) -> tuple[int, str | None]:
        """A new version of an existing secret: `value`, or a generated one that is returned once."""
        validate_name(name)
        if self._version(name) is None:
            raise SecretNotFound(name)
        generated = generate_value() if value is None else None
        version = self._write(name, _validate_value(name, value if value is not None else generated))
        self._audit("secret.rotate", name, version)
        return version, generated

    def version(self, name: str) -> int | None:
        # Not audited: the refresher polls it every second or so, and it reveals no value.
        return self._version(validate_name(name))

    def _audit(self, action: str, name: str, version: int | None) -> None:
        if self.audit is not None:
            self.audit.record(self.actor, action, name, version=version)
