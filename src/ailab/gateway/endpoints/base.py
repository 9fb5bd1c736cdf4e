"""Endpoint adapters: thin raw-ASGI routes over the one request cycle (`gateway/cycle.py`).

`Route` authenticates (API keys and session tokens, Bearer or `x-api-key`), checks the route's permission,
gives the request an id and answers errors in the endpoint's own shape; `handle` does the rest.
`Endpoint` is a `Route` whose `handle` is the whole cycle: parse → resolve → reserve → call (unary or
stream) → answer → ledger → settle. A subclass declares only what differs (see CYCLE.md / docs/gateway.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from ailab.access import Principal, decide, holds
from ailab.gateway.asgi import Receive, Scope, Send, header, read_json, send_json
from ailab.gateway.cycle import Cycle, RequestContext, usage_of
from ailab.gateway.errors import GatewayError
from ailab.gateway.providers.base import Provider
from ailab.gateway.router import NoDeploymentAvailable
from ailab.gateway.streaming import StreamShape, relay_stream
from ailab.gateway.types import StreamItem, UpstreamError, Usage

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI


class Route:
    """A /v1 route: `routes` are (method, path) pairs, a path may hold `{name}` segments (in
    `ctx.params`). `endpoint_id` is the ledger's endpoint for rows this route writes."""

    routes: ClassVar[tuple[tuple[str, str], ...]] = ()
    endpoint_id: ClassVar[int] = 0
    permission: ClassVar[str] = "models.use"
    # OpenAPI operation objects by (method, path) of `routes`, merged into /openapi.json (gateway/openapi.py;
    # None: the built-in description there, else an open one). `x-permission` is added from `permission`.
    openapi: ClassVar[dict[tuple[str, str], dict[str, Any]] | None] = None

    def __init__(self, api: GatewayAPI) -> None:
        self.api = api
        self.cycle: Cycle = api.cycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = RequestContext(self.endpoint_id)
        ctx.params = scope.get("path_params") or {}
        try:
            ctx.principal = self.authenticate(scope)
            self.authorize(ctx.principal)  # after: a 403 is ledgered against the key it names
        except GatewayError as err:
            await self.refuse(send, err, ctx)
            return
        await self.handle(ctx, scope, receive, send)

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    # -- auth -----------------------------------------------------------------------------------------

    def authenticate(self, scope: Scope) -> Principal:
        principal = self.api.auth.authenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if principal is None:
            raise GatewayError(
                401, "missing or invalid API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        return principal

    def authorize(self, principal: Principal) -> None:
        if not holds(principal, self.permission):
            raise GatewayError(403, decide(principal, self.permission).reason, code="permission_denied")

    # -- errors in the endpoint's shape ---------------------------------------------------------------

    def error_body(self, err: GatewayError) -> dict[str, Any]:
        """The JSON body of an error answer; OpenAI's `{"error": {message, type, param, code}}` here."""
        return err.body()

    async def send_error(self, send: Send, err: GatewayError, ctx: RequestContext) -> None:
        extra = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        await send_json(send, err.status, self.error_body(err), [*extra, *ctx.response_headers()])

    async def refuse(self, send: Send, err: GatewayError, ctx: RequestContext) -> None:
        """Answer a refusal and ledger it (a refused request is a ledger row too)."""
        await self.send_error(send, err, ctx)
        await self.cycle.refuse(ctx, err)


class Endpoint(Route):
    """A route that calls a model: the request cycle with this endpoint's parsing, provider call and
    answer shapes. Override `parse` always; the rest has chat-like defaults."""

    stream_shape: ClassVar[type[StreamShape]] = StreamShape

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        cycle = self.cycle
        try:
            body = await read_json(scope, receive, self.api.max_body)
            model = self.parse(ctx, body)
            await self.pre_call(ctx)
            if self.api.model_hooks:
                model = await self.api.map_model(ctx, model)
            fallbacks = body.pop("fallbacks", None)
            cycle.resolve(ctx, model, fallbacks)
            self.admit(ctx)
            await cycle.reserve(ctx, *self.estimate(ctx))
        except GatewayError as err:
            await self.refuse(send, err, ctx)
            return
        send_last = self.finishing(ctx, cycle.sender(ctx, send))
        cycle.begin(ctx)
        try:
            if ctx.stream:
                await self._stream(ctx, receive, send_last)
            else:
                await self._unary(ctx, send_last)
        except BaseException as exc:
            await cycle.end(ctx, exc)
            raise
        await cycle.end(ctx)

    # -- what an endpoint declares --------------------------------------------------------------------

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        """Validate the body (raise a 400 GatewayError naming the field), set `ctx.body` (what the
        provider call gets; default: the body) and `ctx.stream`; return the model name asked for."""
        raise NotImplementedError

    async def pre_call(self, ctx: RequestContext) -> None:
        """Pre-call hook, after `parse` and before the model is mapped and routed: what needs an await
        (e.g. reading a stored conversation). May raise a GatewayError (refused and ledgered)."""

    def admit(self, ctx: RequestContext) -> None:
        """Pre-call hook once the model group is known (`ctx.group`), before reserving: refuse (raise a
        GatewayError) what this group cannot serve."""

    def finishing(self, ctx: RequestContext, send: Send) -> Send:
        """Pre-finish hook: wrap `send` to act before the answer's last bytes go out (default: as is)."""
        return send

    def estimate(self, ctx: RequestContext) -> tuple[int, int]:
        """(prompt, completion) tokens to reserve against the key's limits (only keys with limits)."""
        budgeter = self.cycle.budgeter
        return budgeter.estimate(ctx.body, True) if budgeter is not None else (0, 0)

    def call(self, provider: Provider, ctx: RequestContext) -> Awaitable[dict[str, Any]]:
        """The unary provider call (routed, retried and fallen back by the cycle)."""
        return provider.chat(ctx.body)

    def open(self, provider: Provider, ctx: RequestContext) -> AsyncIterator[StreamItem]:
        """The streaming provider call: OpenAI chat chunks (or RawEvents) ending with a usage chunk."""
        return provider.chat_stream(ctx.body)

    def usage(self, result: dict[str, Any], ctx: RequestContext) -> Usage | None:
        return usage_of(result)

    def answer(self, result: dict[str, Any], ctx: RequestContext) -> Any:
        """The unary answer's JSON (default: the provider's result as it is)."""
        return result

    # -- the two ways to answer -----------------------------------------------------------------------

    async def _unary(self, ctx: RequestContext, send: Send) -> None:
        try:
            result = await self.cycle.call(ctx, lambda p: self.call(p, ctx))
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await self.send_error(send, self.cycle.failure(ctx, exc), ctx)
            return
        ctx.outcome.usage = self.usage(result, ctx)
        await send_json(send, 200, self.answer(result, ctx), ctx.response_headers())

    async def _stream(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        try:
            start = await self.cycle.open_stream(ctx, lambda p: self.open(p, ctx))
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await self.send_error(send, self.cycle.failure(ctx, exc), ctx)
            return
        await relay_stream(start, ctx, self.stream_shape(ctx), receive, send)
