"""Health, readiness and metrics routes (Starlette; not on the hot path)."""

from __future__ import annotations

import ipaddress
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
        ledger = _ledger_check(state)
        body = {
            "status": ("ok" if ledger == "ok" else "degraded") if db_ok else "unavailable",
            "database": "ok" if db_ok else db_error,
            "ledger": ledger,
            "deployments": _deployments(state),
        }
        # A degraded ledger still serves (rows wait in memory, the journal, or spill files): ready, and
        # says why, rather than take every replica out of rotation over a full disk.
        return JSONResponse(body, status_code=200 if db_ok else 503)

    async def metrics(request: Request) -> Response:
        if metrics_need_auth(state) and not _authorized(state, request):
            return JSONResponse(
                {
                    "error": {
                        "message": "metrics need 'Authorization: Bearer <key>' when the lab "
                        "is reachable beyond loopback",
                        "type": "authentication_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status_code=401,
            )
        if state.ledger is not None:
            state.metrics.ledger_depth.set(state.ledger.depth)
        if state.api is not None:
            state.metrics.in_flight.set(state.api.in_flight)
        _deployment_gauges(state)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/liveliness", live, methods=["GET"]),  # LiteLLM's spelling
        Route("/health/readiness", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def metrics_need_auth(state: LabState) -> bool:
    setting = state.loaded.config.ailab.metrics_auth
    if setting != "auto":
        return setting == "always"
    return not is_loopback(state.loaded.config.ailab.host)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _authorized(state: LabState, request: Request) -> bool:
    if state.auth is None:
        return False
    auth = request.headers.get("authorization")
    return state.auth.authenticate(auth.encode("latin-1") if auth else None) is not None


def _deployment_gauges(state: LabState) -> None:
    if state.router is None:
        return
    now = time.monotonic()
    for deps in state.router.groups.values():
        for d in deps:
            state.metrics.deployment_up.labels(d.id).set(0 if d.state.cooldown_until > now else 1)


def _db_check(state: LabState) -> tuple[bool, str]:
    if state.engine is None:
        return False, "not started"
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"; report its class, never the URL
        return False, f"unreachable ({type(exc).__name__})"
    return True, ""


def _ledger_check(state: LabState) -> str:
    """ "ok", or "degraded: <why>" while ledger rows do not reach the database (or the journal)."""
    writer = state.ledger
    if writer is None:
        return "not started"
    problem = writer.problem
    if problem is None:
        return "ok"
    return f"degraded: {problem}; {writer.depth} rows waiting"


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
