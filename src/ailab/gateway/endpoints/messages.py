"""POST /v1/messages and POST /v1/messages/count_tokens: the Anthropic Messages API in front of any provider,
as thin adapters over the request cycle (`gateway/cycle.py`): auth, model scope, budgets and rate limits,
the router with fallbacks/retries/cooldowns and one ledger row with endpoint `messages`, as on every
endpoint; only the wire shapes are Anthropic's.

Keys come as `x-api-key` (Anthropic's clients) or `Authorization: Bearer`; `anthropic-version` is accepted,
`anthropic-beta` travels to Anthropic deployments. Per deployment (fallbacks may cross providers): native
pass-through to Anthropic, translation to chat for the rest (messages_calls.py). count_tokens bills nothing
and is not ledgered: Anthropic deployments count natively, other providers get the gateway's estimate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ailab.access import Principal
from ailab.gateway.asgi import Receive, Scope, Send, header, read_json, send_json
from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Endpoint, Route
from ailab.gateway.endpoints.messages_calls import Call, count_tokens, create, is_native, native_items
from ailab.gateway.endpoints.messages_convert import request_text, to_chat
from ailab.gateway.endpoints.messages_errors import error_body, error_type, from_upstream_messages
from ailab.gateway.endpoints.messages_stream import ChatToEvents, NativeEvents, error_event
from ailab.gateway.endpoints.messages_validate import validate_messages
from ailab.gateway.errors import GatewayError
from ailab.gateway.providers.base import Provider, estimate_tokens
from ailab.gateway.streaming import Seen, StreamShape
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError, Usage
from ailab.ledger import ENDPOINT_MESSAGES

AUTH_HINT = "missing or invalid API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'"


class AnthropicShaped(Route):
    """Anthropic's error shape, its auth hint, and `request-id` (Anthropic's header) beside x-request-id."""

    def authenticate(self, scope: Scope) -> Principal:
        principal = self.api.auth.authenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if principal is None:
            raise GatewayError(401, AUTH_HINT, code="invalid_api_key")
        return principal

    def error_body(self, err: GatewayError) -> dict[str, Any]:
        return error_body(err)

    async def send_error(self, send: Send, err: GatewayError, ctx: RequestContext) -> None:
        if (b"request-id", ctx.request_id.encode()) not in ctx.headers:
            ctx.headers.append((b"request-id", ctx.request_id.encode()))
        await super().send_error(send, err, ctx)

    def prepare(self, ctx: RequestContext, scope: Scope) -> Call:
        ctx.headers.append((b"request-id", ctx.request_id.encode()))
        beta = header(scope, b"anthropic-beta")
        call = ctx.scratch["call"] = Call({}, beta.decode("latin-1").strip() if beta else None)
        return call


class MessagesShape(StreamShape):
    """Anthropic's event stream: a native deployment's events forwarded as they came; chat chunks
    (every other provider) converted to Anthropic's sequence."""

    def __init__(self, ctx: RequestContext) -> None:
        super().__init__(ctx)
        self.native: NativeEvents | None = ctx.scratch.get("native")
        self.events = ChatToEvents(model=ctx.body["model"])

    def chunk(self, chunk: dict[str, Any], seen: Seen) -> bytes | None:
        if self.native is not None:
            return None  # the usage chunk that closes a native stream: for the ledger only
        return self.events.wire(chunk) or None

    def raw(self, item: RawEvents) -> bytes:
        if self.native is not None:
            return item.wire
        return self.events.wire(item)

    def last(self) -> bytes:
        if self.native is not None:
            return b""
        self.events.usage = self.ctx.outcome.usage or self.events.usage
        return self.events.end_wire()

    def error(self, err: GatewayError) -> bytes:
        if self.native is not None and self.native.errored:
            return b""  # Anthropic's own error event went out as it came
        return error_event(error_type(err.status), err.message)

    def estimate(self, seen: Seen) -> Usage:
        text = self.native.text if self.native is not None else "".join(self.events.text)
        reported = self.native.usage if self.native is not None else None
        return Usage(
            prompt_tokens=(reported.prompt_tokens if reported else 0)
            or estimate_tokens(request_text(self.ctx.body)),
            completion_tokens=max(estimate_tokens(text), reported.completion_tokens if reported else 0),
            cached_tokens=reported.cached_tokens if reported else 0,
            cache_write_tokens=reported.cache_write_tokens if reported else 0,
            estimated=True,
        )


class Messages(AnthropicShaped, Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/messages"),)
    endpoint_id = ENDPOINT_MESSAGES
    stream_shape = MessagesShape

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        self.prepare(ctx, scope)
        await super().handle(ctx, scope, receive, send)

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        validate_messages(body)
        ctx.body = ctx.scratch["call"].body = body
        ctx.stream = bool(body.get("stream"))
        model: str = body["model"]
        return model

    def estimate(self, ctx: RequestContext) -> tuple[int, int]:
        return estimate_tokens(request_text(ctx.body)), int(ctx.body["max_tokens"])

    async def call(self, provider: Provider, ctx: RequestContext) -> dict[str, Any]:
        answer = await create(provider, ctx.scratch["call"])
        return {"message": answer.message, "usage": answer.usage}

    def usage(self, result: dict[str, Any], ctx: RequestContext) -> Usage | None:
        usage: Usage | None = result["usage"]
        return usage

    def answer(self, result: dict[str, Any], ctx: RequestContext) -> Any:
        return result["message"]

    def open(self, provider: Provider, ctx: RequestContext) -> AsyncIterator[StreamItem]:
        call: Call = ctx.scratch["call"]
        if is_native(provider):  # per attempt: the one that answers sets it last
            ctx.scratch["native"] = tracker = NativeEvents()
            return native_items(provider, call, tracker)
        ctx.scratch.pop("native", None)
        return provider.chat_stream(to_chat({**call.body, "stream": True}, provider.name))


class CountTokens(AnthropicShaped):
    """Authenticated and model-scoped like /v1/messages; not ledgered (a count bills nothing)."""

    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/messages/count_tokens"),)
    endpoint_id = ENDPOINT_MESSAGES

    async def refuse(self, send: Send, err: GatewayError, ctx: RequestContext) -> None:
        await self.send_error(send, err, ctx)

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        call = self.prepare(ctx, scope)
        try:
            call.body = body = await read_json(scope, receive, self.api.max_body)
            validate_messages(body, count_only=True)
            assert ctx.principal is not None
            self.cycle.check_model(ctx.principal, body["model"])
            dep = self.cycle.router.pick(body["model"])
            if dep is None:
                raise GatewayError(529, f"no deployment of model {body['model']!r} is available now")
            data, _native = await count_tokens(self.cycle.router.providers[dep.id], call)
        except GatewayError as err:
            await self.send_error(send, err, ctx)
            return
        except UpstreamError as exc:
            await self.send_error(send, from_upstream_messages(exc), ctx)
            return
        await send_json(send, 200, data, ctx.response_headers())
