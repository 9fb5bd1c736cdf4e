"""Playground (streaming chat as the signed-in user, through the gateway in process: routed, metered,
budgeted and in the ledger like a /v1 call) and the knowledge page (its actions call the admin API)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ailab.console.web import Pages, Viewer, viewer
from ailab.gateway import RequestContext
from ailab.knowledge import GatewayClient, ModelCallError
from ailab.ledger import ENDPOINT_CHAT
from ailab.types import pusd_to_usd

if TYPE_CHECKING:
    from ailab.access import Principal
    from ailab.server.state import LabState

PARAMS = ("temperature", "top_p", "max_tokens", "seed")


def _body(raw: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise ValueError("model: required (a string)")
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: required (a non-empty list)")
    body: dict[str, Any] = {"messages": messages, "stream_options": {"include_usage": True}}
    for name in PARAMS:
        value = raw.get(name)
        if value is not None and value != "":
            if not isinstance(value, int | float):
                raise ValueError(f"{name}: must be a number")
            body[name] = value
    return raw["model"], body


def _turn_stats(state: LabState, event: Any, t0: float) -> dict[str, Any]:
    if event is None:
        return {"latency_ms": round((time.perf_counter() - t0) * 1000)}
    u = event.usage
    cost = event.cost_pusd
    if not event.priced and state.ledger is not None:  # the price the ledger writer will record
        cost = state.ledger.prices.cost_pusd(event.deployment, u, event.latency_s, event.status >= 400)
    return {
        "request_id": event.request_id,
        "deployment": event.deployment.id if event.deployment else None,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cost_usd": None if cost is None else str(pusd_to_usd(cost)),
        "latency_ms": round(event.latency_s * 1000),
        "ttft_ms": None if event.ttft_s is None else round(event.ttft_s * 1000),
    }


async def _stream(
    state: LabState, client: GatewayClient, p: Principal, group: str, body: dict[str, Any]
) -> AsyncIterator[bytes]:
    t0 = time.perf_counter()
    ctx = RequestContext(ENDPOINT_CHAT)  # its ledger event is the turn's stats, as the ledger records them
    try:
        async for chunk in client.chat_stream(p, group, body, ctx):
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except ModelCallError as exc:
        yield b"event: error\ndata: " + orjson.dumps({"message": str(exc), "status": exc.status}) + b"\n\n"
    yield b"event: stats\ndata: " + orjson.dumps(_turn_stats(state, ctx.event, t0)) + b"\n\n"


def chat_models(state: LabState, v: Viewer) -> list[str]:
    if state.api is None:
        return []
    return [m for m in GatewayClient(state.api).chat_models() if v.principal.may_use(m)]


def routes(state: LabState, pages: Pages) -> list[Route]:
    return [*_playground_routes(state, pages), *_knowledge_routes(state, pages)]


def _playground_routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("models.use")
    def playground(request: Request, v: Viewer) -> Response:
        return pages.render(request, "playground.html", v, models=chat_models(state, v))

    async def chat(request: Request) -> Response:
        v = viewer(state, request)
        if v is None:
            return _error(401, "sign in first")
        if not v.session.csrf_ok(request.headers.get("x-csrf-token")):
            return _error(403, "missing or invalid CSRF token (send the X-CSRF-Token header)")
        if not v.may("models.use"):
            return _error(403, f"{v.name} may not use models")
        try:
            group, body = _body(orjson.loads(await request.body()))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _error(400, str(exc) if isinstance(exc, ValueError) else "the body is not valid JSON")
        if group not in chat_models(state, v):
            return _error(400, f"model {group!r} is not a chat model you may use")
        assert state.api is not None
        client = GatewayClient(state.api)
        return StreamingResponse(
            _stream(state, client, v.principal, group, body),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/playground", playground), Route("/playground/chat", chat, methods=["POST"])]


def _knowledge_routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("knowledge.use")
    def knowledge(request: Request, v: Viewer) -> Response:
        svc = state.knowledge_service()  # what GET /v1/knowledge/collections answers, by the same rule
        visible = svc.visible(v.principal)
        chosen = next((c for c in visible if c.name == request.query_params.get("collection")), None)
        if chosen is None and visible:
            chosen = visible[0]
        return pages.render(
            request,
            "knowledge.html",
            v,
            collections=[svc.describe(c) for c in visible],
            chosen=chosen.name if chosen else None,
            documents=svc.catalog.documents(chosen.id) if chosen else [],
            models=chat_models(state, v),
            manage=v.may("knowledge.manage"),
        )

    return [Route("/knowledge", knowledge)]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)
