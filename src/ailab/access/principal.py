"""Who is calling. One type for the master key now and for users, projects and virtual keys later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PrincipalKind = Literal["master", "key", "user", "service"]


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # stable, non-secret: "master", a key id, a user id
    kind: PrincipalKind
    key_id: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    allowed_models: frozenset[str] | None = None  # None: every model

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


MASTER = Principal(id="master", kind="master", key_id="master", roles=frozenset({"admin"}))
