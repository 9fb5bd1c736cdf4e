"""POST /v1/messages and POST /v1/messages/count_tokens: the Anthropic Messages API in front of any
provider, metered like every other endpoint (auth, model scope, budgets and rate limits, router with
fallbacks/retries/cooldowns, one ledger row with endpoint `messages`), answering in Anthropic's shapes.

Keys come as `x-api-key` (Anthropic's clients) or `Authorization: Bearer`; `anthropic-version` is
accepted and `anthropic-beta` travels to Anthropic deployments. count_tokens is not ledgered (it bills
nothing): Anthropic deployments count natively, other providers get the gateway's estimate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ailab.access.principal import Principal
from ailab.gateway.asgi import SSE_HEADERS, Message, Receive, Scope, Send, header, read_json, send_json
from ailab.gateway.endpoints.messages_calls import Answer, Call, EventSource, count_tokens, create
from ailab.gateway.endpoints.messages_convert import reserve_view
from ailab.gateway.endpoints.messages_errors import (
    error_type,
    from_upstream_messages,
    request_id_headers,
    send_anthropic_error,
)
from ailab.gateway.endpoints.messages_stream import error_event
from ailab.gateway.endpoints.messages_validate import validate_messages
from ailab.gateway.errors import GatewayError, from_upstream, retry_after_header
from ailab.gateway.providers.base import Provider
from ailab.gateway.router import Attempt, NoDeploymentAvailable, StreamStart
from ailab.gateway.streaming import DisconnectWatch, Seen, _close
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError
from ailab.ledger.schema import ENDPOINT_MESSAGES

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI, Outcome

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
log = logging.getLogger("ailab.gateway")


class MessagesEndpoint:
    def __init__(self, api: GatewayAPI, outcome: type[Outcome]) -> None:
        self.api = api
        self.outcome = outcome

    def routes(self) -> dict[tuple[str, str], Handler]:
        create_, count = guarded(self.create), guarded(self.count_tokens)
        out: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            out[("POST", f"{prefix}/messages")] = create_
            out[("POST", f"{prefix}/messages/count_tokens")] = count
        return out

    # -- POST /v1/messages ----------------------------------------------------------------------------

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = os.urandom(12).hex()
        t0 = time.perf_counter()
        principal: Principal | None = None
        group = ""
        reservation = None
        api = self.api
        try:
            principal = self._principal(scope)
            body = await read_json(scope, receive, api.max_body)
            validate_messages(body)
            group = body["model"]
            api.check_model(principal, group)
            fallbacks = api._fallbacks(group, body.pop("fallbacks", None), principal)
            if principal.limits and api.budgeter is not None:
                reservation = await api.budgeter.reserve(
                    principal.limits, reserve_view(body), api.router.groups[group], True
                )
        except GatewayError as err:
            await send_anthropic_error(send, err, request_id)
            outcome = self.outcome(status=err.status, error_type=err.code or err.type)
            api._finish(request_id, ENDPOINT_MESSAGES, principal, Attempt(group), outcome, False, t0, None)
            return
        call = Call(body, _text_header(scope, b"anthropic-beta"))
        stream = bool(body.get("stream"))
        attempt, outcome = Attempt(group), self.outcome()
        finished: list[Any] = []

        def finish() -> Any:
            if not finished:
                finished.append(
                    api._finish(
                        request_id, ENDPOINT_MESSAGES, principal, attempt, outcome, stream, t0, reservation
                    )
                )
            return finished[0]

        async def send_last(message: Message) -> None:
            # The ledger row is submitted before the last bytes go out (as on /v1/chat/completions).
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finish()
            await send(message)

        api.in_flight += 1
        try:
            if stream:
                await self._stream(call, attempt, outcome, fallbacks, receive, send_last, request_id, t0)
            else:
                await self._unary(call, attempt, outcome, fallbacks, send_last, request_id)
        except BaseException as exc:
            _crashed(outcome, exc)
            raise
        finally:
            try:
                event = finish()
            finally:
                api.in_flight -= 1
            if reservation is not None and api.budgeter is not None:
                await api.budgeter.settle(reservation, event.usage, event.cost_pusd, event.ts)

    def _principal(self, scope: Scope) -> Principal:
        principal = self.api.auth.authenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if principal is None:
            raise GatewayError(
                401,
                "missing or invalid API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        self.api._may_use_models(principal)
        return principal

    async def _unary(
        self,
        call: Call,
        attempt: Attempt,
        outcome: Outcome,
        fallbacks: list[str],
        send: Send,
        request_id: str,
    ) -> None:
        async def one(provider: Provider) -> Answer:
            return await create(provider, call)

        try:
            answer: Answer = await self.api.router.call(attempt.group, one, attempt, fallbacks)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await _fail(send, exc, outcome, request_id)
            return
        outcome.usage = answer.usage
        await send_json(send, 200, answer.message, request_id_headers(request_id))

    async def _stream(
        self,
        call: Call,
        attempt: Attempt,
        outcome: Outcome,
        fallbacks: list[str],
        receive: Receive,
        send: Send,
        request_id: str,
        t0: float,
    ) -> None:
        sources: list[EventSource] = []

        async def open_one(provider: Provider) -> StreamStart:
            source = EventSource(provider, call)
            it = aiter(source.events())
            try:
                first = await anext(it)  # failures before the first event are retried by the router
            except StopAsyncIteration:
                raise UpstreamError(
                    "upstream closed the stream without data", kind="protocol", status=502
                ) from None
            dep = provider.deployment
            dep.state.in_flight += 1  # held until the relay ends (least-busy counts streams)
            sources.append(source)
            return StreamStart(first, it, provider, attempt, dep.state.busy.start())

        try:
            start: StreamStart = await self.api.router.call(attempt.group, open_one, attempt, fallbacks)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await _fail(send, exc, outcome, request_id)
            return
        await relay(start, sources[-1], outcome, receive, send, request_id, t0)

    # -- POST /v1/messages/count_tokens ---------------------------------------------------------------

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = os.urandom(12).hex()
        api = self.api
        try:
            principal = self._principal(scope)
            body = await read_json(scope, receive, api.max_body)
            validate_messages(body, count_only=True)
            api.check_model(principal, body["model"])
            dep = api.router.pick(body["model"])
            if dep is None:
                raise GatewayError(529, f"no deployment of model {body['model']!r} is available now")
            data, _native = await count_tokens(
                api.router.providers[dep.id], Call(body, _text_header(scope, b"anthropic-beta"))
            )
        except GatewayError as err:
            await send_anthropic_error(send, err, request_id)
            return
        except UpstreamError as exc:
            await send_anthropic_error(send, from_upstream_messages(exc), request_id)
            return
        await send_json(send, 200, data, request_id_headers(request_id))


async def relay(
    start: StreamStart,
    source: EventSource,
    outcome: Outcome,
    receive: Receive,
    send: Send,
    request_id: str,
    t0: float,
) -> None:
    """Relay while watching for the client's disconnect (then hang up on the upstream, ledger a 499)."""
    seen = Seen()
    watch = DisconnectWatch(receive, seen)
    try:
        await _relay(start, source, outcome, send, request_id, t0, seen)
    except asyncio.CancelledError:
        if not watch.stop():
            raise
        await _close(start.rest)
        _ended(outcome, source, 499, "client_disconnected")
    else:
        watch.stop()
    finally:
        start.release()


async def _relay(
    start: StreamStart,
    source: EventSource,
    outcome: Outcome,
    send: Send,
    request_id: str,
    t0: float,
    seen: Seen,
) -> None:
    headers = [*SSE_HEADERS, *request_id_headers(request_id)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    item: StreamItem | None = start.first
    try:
        while isinstance(item, RawEvents):  # EventSource yields nothing else
            if outcome.ttft is None:
                outcome.ttft = time.perf_counter() - t0
            await send({"type": "http.response.body", "body": item.wire, "more_body": True})
            item = await anext(start.rest, None)
    except UpstreamError as exc:
        seen.finishing = True
        err = from_upstream(exc)
        _ended(outcome, source, err.status, "stream_interrupted")
        if source.native.errored:  # Anthropic's own error event went out as it came
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            await send(
                {"type": "http.response.body", "body": error_event(error_type(err.status), err.message)}
            )
        except OSError:
            return
        return
    except OSError:
        await _close(start.rest)
        _ended(outcome, source, 499, "client_disconnected")
        return
    _ended(outcome, source, 200, None)
    seen.finishing = True
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _ended(outcome: Outcome, source: EventSource, status: int, error: str | None) -> None:
    outcome.status, outcome.error_type = status, error
    outcome.usage = source.usage() or source.estimate()


async def _fail(
    send: Send, exc: UpstreamError | NoDeploymentAvailable, outcome: Outcome, request_id: str
) -> None:
    if isinstance(exc, NoDeploymentAvailable):
        err = GatewayError(
            429, str(exc), code="no_deployment_available", headers=retry_after_header(exc.retry_after)
        )
    else:
        err = from_upstream(exc)
    outcome.status, outcome.error_type = err.status, err.code
    await send_anthropic_error(send, err, request_id)


def _text_header(scope: Scope, name: bytes) -> str | None:
    value = header(scope, name)
    return value.decode("latin-1").strip() if value else None


def _crashed(outcome: Outcome, exc: BaseException) -> None:
    if outcome.status >= 400:
        return
    if isinstance(exc, asyncio.CancelledError):
        outcome.status, outcome.error_type = 499, "client_disconnected"
    else:
        outcome.status, outcome.error_type = 500, "internal_error"


def guarded(handler: Handler) -> Handler:
    """A bug escaping the route still answers in Anthropic's error shape; the traceback goes to the log."""

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
                await send_anthropic_error(send, GatewayError(500, "internal error in the gateway"))

    return run
