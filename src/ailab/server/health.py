"""Health, readiness and metrics routes (Starlette; not on the hot path)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ailab.server.state import LabState


def routes(state: LabState) -> list[Route]:
    async def live(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        db_ok, db_error = _db_check(state)
        body = {
            "status": "ok" if db_ok else "unavailable",
            "database": "ok" if db_ok else db_error,
            "deployments": _deployments(state),
        }
        return JSONResponse(body, status_code=200 if db_ok else 503)

    async def metrics(_: Request) -> Response:
        if state.ledger is not None:
            state.metrics.ledger_depth.set(state.ledger.depth)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/liveliness", live, methods=["GET"]),  # LiteLLM's spelling
        Route("/health/readiness", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _db_check(state: LabState) -> tuple[bool, str]:
    if state.engine is None:
        return False, "not started"
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"; report its class, never the URL
        return False, f"unreachable ({type(exc).__name__})"
    return True, ""


def _deployments(state: LabState) -> list[dict[str, Any]]:
    if state.router is None:
        return []
    now = time.monotonic()
    out = []
    for group, deps in state.router.groups.items():
        for d in deps:
            st = d.state
            cooling = st.cooldown_until > now
            out.append(
                {
                    "model": group,
                    "deployment": d.id,
                    "provider": d.provider_label,
                    "state": "cooldown"
                    if cooling
                    else ("error" if st.last_error and not st.last_ok else "ok"),
                    "cooldown_seconds_left": round(st.cooldown_until - now, 1) if cooling else 0,
                    "last_error": st.last_error,
                    "in_flight": st.in_flight,
                }
            )
    return out
