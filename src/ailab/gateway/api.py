"""The OpenAI-compatible routes, as raw ASGI on the hot path: a route table of thin endpoint adapters
(`gateway/endpoints/`) over the one request cycle (`gateway/cycle.py`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ailab.access import Authenticator, Principal
from ailab.gateway.asgi import Message, Receive, Scope, Send, send_error
from ailab.gateway.cycle import Cycle, Outcome, RequestContext, model_not_found
from ailab.gateway.endpoints.base import Route
from ailab.gateway.errors import GatewayError
from ailab.gateway.limits import Budgeter
from ailab.gateway.router import Router
from ailab.ledger import UsageEvent
from ailab.observability import Metrics

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
# (ctx, model asked) → the model group to serve it with, or None when the name is not the hook's. A hook
# may rewrite ctx.body (e.g. an app's system prompt) and set ctx.ledger fields (e.g. "app").
ModelHook = Callable[[RequestContext, str], Awaitable[str | None]]
ModelLister = Callable[[Principal], list[dict[str, Any]]]
log = logging.getLogger("ailab.gateway")

__all__ = ["GatewayAPI", "Handler", "ModelHook", "ModelLister", "Outcome", "guarded", "model_not_found"]


def default_routes() -> list[type[Route]]:
    from ailab.gateway.endpoints.chat import ChatCompletions, Embeddings
    from ailab.gateway.endpoints.completions import Completions
    from ailab.gateway.endpoints.messages import CountTokens, Messages
    from ailab.gateway.endpoints.models import ListModels, RetrieveModel
    from ailab.gateway.endpoints.rerank import Rerank

    return [
        ChatCompletions,
        Embeddings,
        Completions,
        ListModels,
        RetrieveModel,
        Messages,
        CountTokens,
        Rerank,
    ]


class GatewayAPI:
    def __init__(
        self,
        router: Router,
        auth: Authenticator,
        metrics: Metrics,
        submit: Callable[[UsageEvent], None],
        max_body: int,
        created: int,
        budgeter: Budgeter | None = None,
    ) -> None:
        self.router = router
        self.auth = auth
        self.metrics = metrics
        self.max_body = max_body
        self.created = created
        self.budgeter = budgeter
        self.cycle = Cycle(router, metrics, submit, budgeter)
        self.routes: dict[tuple[str, str], Handler] = {}
        # Paths with `{name}` segments: (method, segments, handler), matched after the exact table.
        self.patterns: list[tuple[str, tuple[str, ...], Handler]] = []
        # Pillars that serve model names of their own (apps' `app:NAME`) plug in here; empty: no cost.
        self.model_hooks: list[ModelHook] = []
        self.model_listers: list[ModelLister] = []  # extra /v1/models entries for a principal
        self.adapters: list[Route] = []  # every adapter added, in order (for /openapi.json)
        for route in default_routes():
            self.add(route(self))

    @property
    def in_flight(self) -> int:
        return self.cycle.in_flight

    # -- the route table ------------------------------------------------------------------------------

    def add(self, route: Route) -> None:
        """Serve an endpoint adapter at its `routes` (each also without the `/v1` prefix, as today)."""
        self.adapters.append(route)
        for method, path in route.routes:
            self.add_route(method, path, route)

    def add_route(self, method: str, path: str, handler: Handler, alias: bool = True) -> None:
        run = guarded(handler)
        paths = [path, path.removeprefix("/v1")] if alias and path.startswith("/v1/") else [path]
        for p in paths:
            if "{" in p:
                self.patterns.append((method, tuple(p.strip("/").split("/")), run))
            else:
                self.routes[(method, p)] = run

    def match(self, scope: Scope) -> Handler | None:
        path = scope["path"].rstrip("/") or "/"
        handler = self.routes.get((scope["method"], path))
        if handler is not None or not self.patterns:
            return handler
        for method, segments, run in self.patterns:
            if method == scope["method"]:
                params = _match(segments, path)
                if params is not None:
                    scope["path_params"] = params
                    return run
        return None

    def allowed_methods(self, path: str) -> list[str]:
        path = path.rstrip("/") or "/"
        methods = [m for m, p in self.routes if p == path]
        methods += [m for m, segs, _ in self.patterns if _match(segs, path) is not None]
        return list(dict.fromkeys(methods))

    async def map_model(self, ctx: RequestContext, model: str) -> str:
        """The model group a request for `model` is served by (the model hooks' say, else itself)."""
        for hook in self.model_hooks:
            group = await hook(ctx, model)
            if group is not None:
                return group
        return model

    # -- for in-process callers -----------------------------------------------------------------------

    def check_model(self, principal: Principal, model: str) -> None:
        """Raise OpenAI's 404 model_not_found unless the model is served and the key may use it (the
        knowledge routes call this too, so both answer alike)."""
        self.cycle.check_model(principal, model)


def _match(segments: tuple[str, ...], path: str) -> dict[str, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) != len(segments) and not (segments and segments[-1].endswith(":path}")):
        return None
    params: dict[str, str] = {}
    last = segments[-1] if segments else ""
    if last.endswith(":path}"):  # the last segment takes the rest of the path, slashes included
        if len(parts) < len(segments) or not parts[len(segments) - 1]:
            return None
        params[last[1:-6]] = "/".join(parts[len(segments) - 1 :])
        segments, parts = segments[:-1], parts[: len(segments) - 1]
    for seg, part in zip(segments, parts, strict=True):
        if seg.startswith("{") and seg.endswith("}"):
            if not part:
                return None
            params[seg[1:-1]] = part
        elif seg != part:
            return None
    return params


def guarded(handler: Handler) -> Handler:
    """An exception escaping a route is a bug, but the client still gets OpenAI's JSON error shape (never a
    plain-text 500 or a traceback); the traceback goes to the server log."""

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await handler(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            if not started:
                err = GatewayError(500, "internal error in the gateway", code="internal_error")
                await send_error(send, err)

    return run
