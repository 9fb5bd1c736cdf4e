"""Plain records returned by the identity and key stores (no secrets in them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ailab.types import pusd_to_usd, usd_to_pusd

DURATIONS = ("daily", "weekly", "monthly")


class NotFound(LookupError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind


class Conflict(ValueError):
    """The change would break a uniqueness or membership rule."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_budget_pusd: int | None = None
    budget_duration: str | None = None
    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        if self.budget_duration is not None and self.budget_duration not in DURATIONS:
            raise ValueError(f"budget_duration must be one of {', '.join(DURATIONS)} (or empty for lifetime)")
        for name in ("max_budget_pusd", "rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_row(cls, row: Any) -> Limits:
        return cls(row["max_budget_pusd"], row["budget_duration"], row["rpm"], row["tpm"])

    def columns(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def usd_to_pusd(usd: str | float | Decimal | None) -> int | None:
        return None if usd is None else usd_to_pusd(usd)

    def public(self) -> dict[str, Any]:
        budget = None if self.max_budget_pusd is None else str(pusd_to_usd(self.max_budget_pusd))
        return {
            "max_budget_usd": budget,
            "budget_duration": self.budget_duration,
            "rpm": self.rpm,
            "tpm": self.tpm,
        }


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: str
    disabled: bool
    created_ms: int
    limits: Limits
    projects: tuple[str, ...] = ()
    password_hash: str | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "created_ms": self.created_ms,
            "projects": list(self.projects),
            **self.limits.public(),
        }


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_ms: int
    limits: Limits
    members: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_ms": self.created_ms,
            "members": list(self.members),
            **self.limits.public(),
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    prefix: str
    name: str | None
    user_id: str | None
    project_id: str | None
    allowed_models: tuple[str, ...] | None
    expires_ms: int | None
    revoked_ms: int | None
    created_ms: int
    limits: Limits
    parent_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "allowed_models": None if self.allowed_models is None else list(self.allowed_models),
            "expires_ms": self.expires_ms,
            "revoked_ms": self.revoked_ms,
            "created_ms": self.created_ms,
            "parent_id": self.parent_id,
            **self.limits.public(),
        }
