"""Who is calling the admin API, and may they? Every route depends on `require(permission)`, which asks the
one policy (`ailab.access.policy.decide`); resource checks inside handlers go through `allow()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, HTTPException, Request

from ailab.access import COOKIE, CSRF_HEADER, Principal, decide, user_principal
from ailab.access.sso import TunnelRefused

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
        tunnel = _tunnel_user(state, request)
        if tunnel is not None:
            return tunnel
        raise ApiError(
            401,
            "authentication required: 'Authorization: Bearer <key>' or a console session",
            "invalid_api_key",
        )

    return caller


def _tunnel_user(state: LabState, request: Request) -> Principal | None:
    """The user a Cloudflare Access JWT or the local tailscaled vouches for (docs/sso.md)."""
    tunnel = state.sso.tunnel if state.sso is not None else None
    if tunnel is None:
        return None
    try:
        found = tunnel.identify(request.headers, request.client.host if request.client else None)
    except TunnelRefused as exc:
        raise ApiError(401, str(exc), "invalid_tunnel_identity") from None
    if found is None:
        return None
    if request.method not in SAFE_METHODS:
        # The edge adds the header to any request the browser sends, cross-site ones too: changes need a
        # console session (cookie + CSRF token) or a key.
        raise ApiError(403, "sign in to the console (or use a key) to change things", "csrf")
    return user_principal(found.user, state.access.roles)


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
