"""The overview: live numbers over the last five minutes, spend today and this month against budgets, each
deployment's state and the ledger queue. The page polls `/console/overview/live` (htmx) every 5 s."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ailab.access import usage_scope
from ailab.console import data, facts
from ailab.console.admin import components
from ailab.console.web import ADMIN_ONLY, Pages, Viewer
from ailab.ledger import usage_report

if TYPE_CHECKING:
    from ailab.server.state import LabState


def scope(v: Viewer) -> dict[str, set[str]]:
    """The ledger rows the viewer may see: the admin API's own rule (`access.policy.usage_scope`; asked
    for nothing narrower, it always allows)."""
    return usage_scope(v.principal).where


def _spend(state: LabState, since: float, where: dict[str, set[str]]) -> dict[str, int]:
    assert state.engine is not None
    rows = usage_report(state.engine, "model", since, where=where)
    return {
        "cost_pusd": sum(r.cost_pusd for r in rows),
        "unpriced": sum(r.unpriced for r in rows),
        "requests": sum(r.requests for r in rows),
    }


def live_context(state: LabState, v: Viewer) -> dict[str, Any]:
    assert state.engine is not None
    where = scope(v)
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    ledger = state.ledger
    return {
        "live": data.live(state.engine, where),
        "today": _spend(state, day.timestamp(), where),
        "month": _spend(state, month.timestamp(), where),
        "budgets": facts.budgets(state, v),
        "deployments": facts.deployments(state),
        "queue": ledger.depth if ledger is not None else None,
        "queue_max": ledger.max_queue if ledger is not None else None,
        "scope_all": v.may("usage.read.all"),
        "components": [c for c in components(state) if c["installed"]] if v.may(ADMIN_ONLY) else None,
        "updated": int(time.time() * 1000),
    }


def routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("usage.read.own")
    def overview(request: Request, v: Viewer) -> Response:
        return pages.render(request, "overview.html", v, **live_context(state, v))

    @pages.page("usage.read.own")
    def live(request: Request, v: Viewer) -> Response:
        return pages.render(request, "_live.html", v, **live_context(state, v))

    return [Route("/", overview), Route("/overview/live", live)]
