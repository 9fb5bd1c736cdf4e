"""Who is calling the admin API, and may they? Every route depends on `require(permission)`, which asks the
one policy (`ailab.access.policy.decide`); resource checks inside handlers go through `allow()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, HTTPException, Request

from ailab.access import COOKIE, CSRF_HEADER, Principal, decide, user_principal

if TYPE_CHECKING:
    from ailab.server.state import LabState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiError(HTTPException):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


def caller_dependency(state: LabState) -> Callable[[Request], Principal]:
    def caller(request: Request) -> Principal:
        auth = state.auth
        assert auth is not None
        header = request.headers.get("authorization")
        principal = auth.authenticate(
            header.encode("latin-1") if header else None,
            (request.headers.get("x-api-key") or "").encode("latin-1") or None,
        )
        if principal is not None:
            return principal
        session = state.access.sessions.resolve(request.cookies.get(COOKIE))
        if session is not None:
            if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
                raise ApiError(403, "missing or invalid CSRF token (send the X-CSRF-Token header)", "csrf")
            return user_principal(session.user, state.access.roles)
        raise ApiError(
            401,
            "authentication required: 'Authorization: Bearer <key>' or a console session",
            "invalid_api_key",
        )

    return caller


def require(state: LabState, permission: str | None) -> Any:
    """A dependency: the caller, if its role grants `permission` (None: any authenticated caller)."""
    authenticated = Depends(caller_dependency(state))

    def check(principal: Principal = authenticated) -> Principal:
        if permission is not None:
            try:
                allow(principal, permission)
            except ApiError:
                # Recorded so `ailab doctor` (and admins) can see who keeps hitting which permission;
                # repeats are counted, not written one by one (ailab.access.denials).
                state.access.denials.denied(actor(principal), "access.denied", permission)
                raise
        return principal

    return Depends(check)


def allow(
    principal: Principal, permission: str, *, project_id: str | None = None, owner_id: str | None = None
) -> None:
    decision = decide(principal, permission, project_id=project_id, owner_id=owner_id)
    if not decision.allowed:
        raise ApiError(403, decision.reason, "permission_denied")


def actor(principal: Principal) -> str:
    return principal.name
