"""What every console page shares: who is looking (the session cookie), may they (`policy.decide`, the same
function the admin API asks), the page shell (navigation shows only what the viewer may open), and the
filters that format money, tokens and times."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ailab.access import COOKIE, Principal, Session, decide, user_principal
from ailab.types import pusd_to_usd

if TYPE_CHECKING:
    from ailab.server.state import LabState

HERE = Path(__file__).parent
# Pages only administrators open: no permission in the policy grants them, so decide() allows only "*".
ADMIN_ONLY = "stack.manage"

# (path, label, permission): the navigation, in order. A link is shown when decide() allows it.
NAV: tuple[tuple[str, str, str], ...] = (
    ("/console/", "Overview", "usage.read.own"),
    ("/console/usage", "Usage & cost", "usage.read.own"),
    ("/console/requests", "Requests", "usage.read.own"),
    ("/console/keys", "Keys", "keys.manage.own"),
    ("/console/models", "Models", "models.use"),
    ("/console/knowledge", "Knowledge", "knowledge.use"),
    ("/console/playground", "Playground", "models.use"),
    ("/console/people", "Users & projects", "users.manage"),
    ("/console/audit", "Audit log", "audit.read"),
    ("/console/secrets", "Secrets", "secrets.manage"),
    ("/console/stack", "Stack", ADMIN_ONLY),
)


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    session: Session

    @property
    def name(self) -> str:
        return self.session.user.username

    def may(self, permission: str, **scope: str | None) -> bool:
        return decide(self.principal, permission, **scope).allowed

    def nav(self) -> list[tuple[str, str]]:
        return [(path, label) for path, label, perm in NAV if self.may(perm)]


def viewer(state: LabState, request: Request) -> Viewer | None:
    session = state.access.sessions.resolve(request.cookies.get(COOKIE))
    if session is None:
        return None
    return Viewer(user_principal(session.user, state.access.roles), session)


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    f = t.env.filters
    f["usd"] = usd
    f["num"] = num
    f["when"] = when
    f["ms"] = duration_ms
    t.env.globals["pct"] = pct
    return t


class Pages:
    """Renders pages for one lab: `page(permission)` guards a handler (sign-in, then policy)."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.t = templates()
        self.t.env.globals["sso"] = state.loaded.config.access.sso.oidc  # the "Sign in with …" button

    def render(self, request: Request, name: str, v: Viewer | None, code: int = 200, **ctx: Any) -> Response:
        base = {"v": v, "path": request.url.path, "csrf": v.session.csrf_token if v else ""}
        return self.t.TemplateResponse(request, name, {**base, **ctx}, status_code=code)

    def denied(self, request: Request, v: Viewer, status: int, reason: str) -> Response:
        title = "Not allowed" if status == 403 else "Not found"
        return self.render(request, "error.html", v, status, title=title, reason=reason, status=status)

    def page(self, permission: str | None) -> Callable[[Callable[..., Response]], Callable[[Request], Any]]:
        def wrap(fn: Callable[..., Response]) -> Callable[[Request], Any]:
            @functools.wraps(fn)
            def handler(request: Request) -> Response:
                v = viewer(self.state, request)
                if v is None:
                    if request.headers.get("hx-request"):  # a poll after the session ended: go sign in
                        return Response(headers={"HX-Redirect": "/console/login"})
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
                if permission is not None:
                    decision = decide(v.principal, permission)
                    if not decision.allowed:
                        return self.denied(request, v, 403, decision.reason)
                try:
                    return fn(request, v)
                except Denied as exc:
                    return self.denied(request, v, exc.status, str(exc))

            return handler

        return wrap


class Denied(Exception):
    """Raised inside a page: answer with the 403/404 page (never a blank one)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def usd(pusd: int | None, unpriced: int = 0) -> str:
    """Fixed-point dollars; None (no price known) is a dash, never $0."""
    if pusd is None:
        return "—"
    value = pusd_to_usd(pusd)
    text = f"${value:,.2f}" if abs(value) >= 1 else f"${value:.6f}".rstrip("0").rstrip(".")
    if text == "$0" and pusd:
        text = "<$0.000001"
    return text + (f" + {unpriced} unpriced" if unpriced else "")


def num(n: float | int | None) -> str:
    if n is None:
        return "—"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.2f}"
    return f"{int(n):,}"


def when(ms: int | None) -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_ms(ms: float | int | None) -> str:
    if ms is None:
        return "—"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def pct(part: float | int | None, whole: float | int | None) -> int:
    """A bar width in percent, clamped to 0-100."""
    if not part or not whole:
        return 0
    return max(0, min(100, round(100 * part / whole)))
