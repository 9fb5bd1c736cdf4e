"""Who is calling. One type for the master key, users (sessions) and virtual keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PrincipalKind = Literal["master", "key", "user", "service"]


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # stable, non-secret: "master", a key id, a user id
    kind: PrincipalKind
    role: str = "user"
    permissions: frozenset[str] = field(default_factory=frozenset)
    key_id: str | None = None
    user_id: str | None = None
    project_id: str | None = None  # the project a key is bound to (its usage is ledgered there)
    projects: frozenset[str] = field(default_factory=frozenset)  # projects it may act in
    allowed_models: frozenset[str] | None = None  # None: every model
    expires_ms: int | None = None
    limits: tuple[Any, ...] = ()  # ailab.limits.Scope for the key, its user and its project

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    @property
    def name(self) -> str:
        return self.id if self.kind == "master" else f"{self.kind}:{self.id}"


MASTER = Principal(id="master", kind="master", role="admin", permissions=frozenset({"*"}), key_id="master")
