"""Sign in, sign out, change one's password: the same sessions (cookie + CSRF token) as `/api/auth/*`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ailab.access import COOKIE, LoginFailed, LoginThrottled
from ailab.access.sso import tunnel_sign_in
from ailab.console.web import Pages, Viewer, viewer

if TYPE_CHECKING:
    from ailab.server.state import LabState

MIN_PASSWORD = 12  # as the admin API's UserUpdate


def _safe_next(target: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if not target or not target.startswith("/console") or target.startswith("//"):
        return "/console/"
    return target


def _same_origin(request: Request) -> bool:
    """Form posts must come from the console's own pages (the cookie is SameSite=strict as well)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True  # non-browser clients send neither; they get nothing a CSRF attack could use
    return urlsplit(origin).netloc == request.url.netloc


def first_admin_hint(state: LabState) -> bool:
    """A new lab: only the `admin` user `ailab up` created, and nobody has signed in yet."""
    users = state.access.identity.users()
    if len(users) != 1 or users[0].username != "admin":
        return False
    return not state.access.audit.entries(1, None, "auth.login")


def routes(state: LabState, pages: Pages) -> list[Route]:
    return [*_sign_in_routes(state, pages), *_account_routes(state, pages)]


def _sign_in_routes(state: LabState, pages: Pages) -> list[Route]:
    async def login_page(request: Request) -> Response:
        if request.method == "GET":
            if viewer(state, request) is not None:  # already signed in
                return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
            tunnel = tunnel_sign_in(state, request, _safe_next(request.query_params.get("next")))
            if tunnel is not None:  # Cloudflare Access / tailscaled vouch for the visitor
                return tunnel
            return pages.render(
                request,
                "login.html",
                None,
                next=_safe_next(request.query_params.get("next")),
                hint=first_admin_hint(state),
            )
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        if not _same_origin(request):
            return pages.render(request, "login.html", None, 403, next=target, error="cross-site sign-in")
        client = request.client.host if request.client else "unknown"
        try:
            token, session = state.access.sessions.login(username, password, client)
        except LoginThrottled as exc:
            return pages.render(request, "login.html", None, 429, next=target, error=str(exc))
        except LoginFailed as exc:
            return pages.render(request, "login.html", None, 401, next=target, error=str(exc))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=max(60, int(session.expires_ms / 1000 - time.time())),
        )
        return response

    async def logout(request: Request) -> Response:
        v = viewer(state, request)
        form = await request.form()
        token = request.cookies.get(COOKIE)
        if v is not None and token and v.session.csrf_ok(str(form.get("csrf", ""))):
            state.access.sessions.logout(token)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    return [Route("/login", login_page, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"])]


def _account_routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page(None)
    def account(request: Request, v: Viewer) -> Response:
        return pages.render(request, "account.html", v)

    async def change_password(request: Request) -> Response:
        v = viewer(state, request)
        if v is None:
            return RedirectResponse("/console/login", status_code=303)
        form = await request.form()
        error = _password_problem(state, v, form)
        if error is None:
            state.access.identity.update_user(
                f"user:{v.session.user.id}", v.session.user.id, password=str(form["new"])
            )
        status = 400 if error else 200
        return pages.render(request, "account.html", v, status, error=error, done=error is None)

    return [
        Route("/account", account),
        Route("/account/password", change_password, methods=["POST"]),
    ]


def _password_problem(state: LabState, v: Viewer, form: object) -> str | None:
    get = form.get  # type: ignore[attr-defined]
    if not v.session.csrf_ok(str(get("csrf", ""))):
        return "the form expired: reload the page and try again"
    new, again = str(get("new", "")), str(get("again", ""))
    if state.access.identity.check_password(v.session.user.username, str(get("current", ""))) is None:
        return "the current password is wrong"
    if len(new) < MIN_PASSWORD:
        return f"the new password needs at least {MIN_PASSWORD} characters"
    if new != again:
        return "the two new passwords differ"
    return None
