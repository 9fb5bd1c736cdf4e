"""What the SSO routes and the console share: the session cookie an SSO sign-in sets, safe redirects, and
a console session for a visitor a tunnel vouches for."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ailab.access.sessions import COOKIE, Session
from ailab.access.sso.tunnel import TunnelRefused

if TYPE_CHECKING:
    from ailab.server.state import LabState


def safe_next(value: str | None) -> str:
    """Only a path on this lab (never `//host` or a URL): no open redirect through sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:1000]
    return "/console"


def set_session_cookie(response: Response, request: Request, token: str, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a cross-site top-level GET
        secure=request.url.scheme == "https",
        max_age=max(60, int(session.expires_ms / 1000 - time.time())),
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def tunnel_sign_in(state: LabState, request: Request, target: str) -> Response | None:
    """A console session for the visitor a tunnel vouches for (None: no tunnel identity applies)."""
    tunnel = state.sso.tunnel if state.sso is not None else None
    if tunnel is None:
        return None
    try:
        found = tunnel.identify(request.headers, _client(request))
    except TunnelRefused as exc:
        return Response(str(exc), status_code=401, media_type="text/plain")
    if found is None:
        return None
    token, session = state.access.sessions.start(found.user, _client(request), "sso.login", via=found.via)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token, session)
    return response
