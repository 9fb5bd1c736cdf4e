"""Requests (latest ledger rows, one request's detail), keys and budgets, and models."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ailab.console import data, facts
from ailab.console.overview import scope
from ailab.console.usage import RANGES
from ailab.console.web import Denied, Pages, Viewer

if TYPE_CHECKING:
    from ailab.server.state import LabState

PAGE_ROWS = 100


def request_filters(request: Request, v: Viewer) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The viewer's scope narrowed by the page's filters; a filter outside the scope matches nothing."""
    where = scope(v)
    chosen: dict[str, str] = {}
    for name in data.REQUEST_FILTERS:
        value = request.query_params.get(name)
        if not value:
            continue
        chosen[name] = value
        where[name] = where[name] & {value} if name in where else {value}
    return where, chosen


def routes(state: LabState, pages: Pages) -> list[Route]:
    return [*_request_routes(state, pages), *_key_and_model_routes(state, pages)]


def _request_routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("usage.read.own")
    def requests(request: Request, v: Viewer) -> Response:
        assert state.engine is not None
        where, chosen = request_filters(request, v)
        status = request.query_params.get("status") or None
        rng = request.query_params.get("range", "")
        since = int((time.time() - RANGES[rng]) * 1000) if rng in RANGES else None
        rows = data.latest_requests(state.engine, where, status=status, since_ms=since, limit=PAGE_ROWS)
        labels = facts.names(state)
        options = {
            name: data.dim_values(state.engine, name) for name in ("model", "error", "key", "user", "project")
        }
        if not v.may("usage.read.all"):  # a picker lists only what the viewer may see
            for kind in ("key", "user", "project"):
                seen = {str(row[kind]) for row in rows if row[kind]}
                options[kind] = sorted(seen | ({chosen[kind]} if kind in chosen else set()))
        return pages.render(
            request,
            "requests.html",
            v,
            rows=rows,
            labels=labels,
            options=options,
            chosen=chosen,
            status=status,
            range=rng,
            ranges=list(RANGES),
        )

    @pages.page("usage.read.own")
    def request_detail(request: Request, v: Viewer) -> Response:
        assert state.engine is not None
        rid = request.path_params["row_id"]
        rows = data.latest_requests(state.engine, scope(v), row_id=rid, limit=1)
        if not rows:
            raise Denied(404, f"no request #{rid} that you may see")
        return pages.render(request, "request.html", v, row=rows[0], labels=facts.names(state))

    return [Route("/requests", requests), Route("/requests/{row_id:int}", request_detail)]


def _key_and_model_routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("keys.manage.own")
    def keys(request: Request, v: Viewer) -> Response:
        return pages.render(request, "keys.html", v, **_keys_context(state, request, v))

    @pages.page("models.use")
    def models(request: Request, v: Viewer) -> Response:
        deps = [d for d in facts.deployments(state) if v.principal.may_use(d["group"])]
        return pages.render(request, "models.html", v, deployments=deps)

    return [
        Route("/keys", keys),
        Route("/models", models),
    ]


def _keys_context(state: LabState, request: Request, v: Viewer) -> dict[str, Any]:
    """Keys the viewer may see (its own; anyone's with keys.manage.all), the same rule as GET /api/keys."""
    user_id = request.query_params.get("user") or None
    everyone = v.may("keys.manage.all")
    if not everyone:
        if user_id not in (None, v.principal.user_id):
            decision_ok = v.may("keys.manage.own", owner_id=user_id)
            if not decision_ok:
                raise Denied(403, f"{v.name} may only see its own keys")
        user_id = v.principal.user_id or "-"
    revoked = request.query_params.get("revoked") == "1"
    keys = state.access.keys.keys(user_id=user_id, include_revoked=revoked)
    spend = {b.id: b for b in facts.budgets(state, v) if b.kind == "key"}
    labels = facts.names(state)
    projects = [p for p in state.access.identity.projects() if everyone or p.id in v.principal.projects]
    models = sorted(state.router.groups) if state.router is not None else []
    return {
        "keys": keys,
        "spend": spend,
        "labels": labels,
        "projects": projects,
        "models": [m for m in models if v.principal.may_use(m)],
        "everyone": everyone,
        "users": state.access.identity.users() if everyone else [],
        "revoked": revoked,
        "now_ms": int(time.time() * 1000),
    }
