"""Usage and cost reports, scoped by what the caller may see: its own, its projects', or everything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from ailab.access import Principal, usage_scope
from ailab.ledger import BY_CHOICES, parse_since, usage_report
from ailab.server.admin.deps import ApiError, require

if TYPE_CHECKING:
    from ailab.server.state import LabState


def usage_filters(p: Principal, project_id: str | None, user_id: str | None) -> dict[str, set[str]]:
    """The ledger filter a caller is entitled to (and asked for); a 403 when it asks for more."""
    scope = usage_scope(p, project_id, user_id)
    if not scope:
        raise ApiError(403, scope.decision.reason, "permission_denied")
    return scope.where


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["usage"])
    reader = require(state, "usage.read.own")

    @r.get("/usage", openapi_extra={"x-permission": "usage.read.own"})
    def usage(
        by: str = "model",
        since: str = "7d",
        project_id: str | None = None,
        user_id: str | None = None,
        p: Principal = reader,
    ) -> list[dict[str, Any]]:
        if by not in BY_CHOICES:
            raise ApiError(400, f"by: choose one of {', '.join(BY_CHOICES)}", "invalid_value")
        try:
            start = parse_since(since)
        except ValueError as exc:
            raise ApiError(400, str(exc).replace("--since", "since"), "invalid_value") from None
        assert state.engine is not None
        rows = usage_report(state.engine, by, start, where=usage_filters(p, project_id, user_id))
        return [row.as_dict() for row in rows]

    return r
