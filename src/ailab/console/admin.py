"""Administrators' pages: users, projects and memberships; the audit log; secrets (names and metadata
only); the stack's components. Changes go through the admin API from the page (console.js)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ailab.console.web import ADMIN_ONLY, Pages, Viewer
from ailab.secrets import SecretStoreUnavailable

if TYPE_CHECKING:
    from ailab.server.state import LabState

LOG_LINES = 20


def routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("users.manage")
    def people(request: Request, v: Viewer) -> Response:
        ident = state.access.identity
        return pages.render(
            request,
            "people.html",
            v,
            users=ident.users(),
            projects=ident.projects(),
            roles=sorted(state.access.roles.roles),
            usernames={u.id: u.username for u in ident.users()},
        )

    @pages.page("audit.read")
    def audit(request: Request, v: Viewer) -> Response:
        actor = request.query_params.get("actor") or None
        action = request.query_params.get("action") or None
        entries = state.access.audit.entries(200, actor, action)
        return pages.render(request, "audit.html", v, entries=entries, actor=actor, action=action)

    @pages.page("secrets.manage")
    def secrets(request: Request, v: Viewer) -> Response:
        try:
            store = state.secret_store(actor=v.principal.name)
            items: list[dict[str, Any]] = [asdict(m) for m in store.list()]
            error = None
        except SecretStoreUnavailable as exc:
            items, error = [], str(exc)
        return pages.render(request, "secrets.html", v, secrets=items, error=error)

    @pages.page(ADMIN_ONLY)
    def stack(request: Request, v: Viewer) -> Response:
        return pages.render(request, "stack.html", v, components=components(state))

    return [
        Route("/people", people),
        Route("/audit", audit),
        Route("/secrets", secrets),
        Route("/stack", stack),
    ]


def components(state: LabState) -> list[dict[str, Any]]:
    """The catalog with install state and, for natively run components, health and the last log lines."""
    from ailab.stack import component_catalog as catalog
    from ailab.stack import load_state, read_state, stack_dir, state_file

    data_dir = state.loaded.data_dir
    installed = set(load_state(data_dir).installed)
    running = read_state(state_file(data_dir)).get("components", {})
    out = []
    for comp in catalog().values():
        run = running.get(comp.name, {})
        health = ("healthy" if run.get("healthy") else "starting") if run.get("pid") else ""
        out.append(
            {
                "name": comp.name,
                "phase": comp.phase,
                "installed": comp.name in installed,
                "health": health,
                "restarts": run.get("restarts"),
                "native": bool(comp.native),
                "image": comp.image_ref,
                "description": comp.description,
                "log": _tail(stack_dir(data_dir) / "logs" / f"{comp.name}.log") if run else [],
            }
        )
    return sorted(out, key=lambda c: (not c["installed"], c["name"]))


def _tail(path: Any) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=LOG_LINES)]
    except FileNotFoundError:
        return []
