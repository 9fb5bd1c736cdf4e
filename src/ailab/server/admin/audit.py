"""The audit log: read and verify."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query

from ailab.access import Principal
from ailab.server.admin.deps import require

if TYPE_CHECKING:
    from ailab.server.state import LabState


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["audit"])
    reader = require(state, "audit.read")

    @r.get("/audit", openapi_extra={"x-permission": "audit.read"})
    def entries(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        actor: str | None = None,
        action: str | None = None,
        _: Principal = reader,
    ) -> list[dict[str, Any]]:
        return [asdict(e) for e in state.access.audit.entries(limit, actor, action)]

    @r.get("/audit/verify", openapi_extra={"x-permission": "audit.read"})
    def verify(_: Principal = reader) -> dict[str, Any]:
        return asdict(state.access.audit.verify())

    return r
