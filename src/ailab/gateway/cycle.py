"""The one request cycle behind every endpoint and every in-process caller:
resolve (model scope, fallbacks) → reserve (budgets, rate limits) → route and call → usage → ledger → settle.

An endpoint (ASGI adapter in `gateway/endpoints/`) or an in-process caller (`knowledge/gateway_client.py`)
fills a `RequestContext` and drives it through a `Cycle`; the cycle alone decides how a request is
metered, priced, ledgered and settled, so every way into the gateway answers and bills alike.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ailab.access import Principal
from ailab.gateway.errors import GatewayError, clip, from_upstream, retry_after_header
from ailab.gateway.ids import random_hex
from ailab.gateway.limits import Budgeter, rate_headers
from ailab.gateway.providers.base import Provider
from ailab.gateway.router import Attempt, NoDeploymentAvailable, Router, StreamStart
from ailab.gateway.types import StreamItem, UpstreamError, Usage
from ailab.ledger import UsageEvent, schema
from ailab.observability import Metrics

T = TypeVar("T")
Opener = Callable[[Provider], AsyncIterator[StreamItem]]


@dataclass(slots=True)
class Outcome:
    """Filled in while a request runs; turned into metrics and one ledger event at the end."""

    status: int = 200
    error_type: str | None = None
    usage: Usage | None = None
    ttft: float | None = None


def new_request_id() -> str:
    return random_hex(12)


@dataclass(slots=True)
class RequestContext:
    """One request through the cycle. An adapter sets what it parsed (principal, body, stream, model via
    `Cycle.resolve`); the cycle fills attempt, outcome, reservation and, at the end, `event`."""

    endpoint: int  # ledger endpoint id (ailab.ledger.schema.ENDPOINT_*)
    principal: Principal | None = None
    body: dict[str, Any] = field(default_factory=dict)  # what the provider call is made with
    stream: bool = False
    group: str = ""  # the model group, once resolved
    fallbacks: list[str] = field(default_factory=list)  # groups tried after `group`, scope-checked
    request_id: str = field(default_factory=new_request_id)
    t0: float = field(default_factory=time.perf_counter)
    # Extra UsageEvent fields an adapter sets (e.g. {"app": "helpdesk"}): applied to the event by name.
    ledger: dict[str, Any] = field(default_factory=dict)
    # Extra answer headers (after x-request-id): rate-limit headers, an adapter's own.
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # path parameters (`/v1/models/{id}`)
    scratch: dict[str, Any] = field(default_factory=dict)  # the adapter's own state for this request
    attempt: Attempt = field(default_factory=lambda: Attempt(""))
    outcome: Outcome = field(default_factory=Outcome)
    reservation: Any = None
    event: UsageEvent | None = None

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", self.request_id.encode()), *self.headers]


def usage_of(payload: dict[str, Any] | None) -> Usage | None:
    """The usage of an OpenAI-shaped answer or chunk. The adapters' `"estimated": true` marker is taken
    out of the client's view and kept on the Usage (the ledger flags the row)."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    out = Usage.from_openai(usage)
    if out is not None and isinstance(usage, dict) and usage.pop("estimated", False):
        out.estimated = True
    return out


class Cycle:
    def __init__(
        self,
        router: Router,
        metrics: Metrics,
        submit: Callable[[UsageEvent], None],
        budgeter: Budgeter | None = None,
    ) -> None:
        self.router = router
        self.metrics = metrics
        self.submit = submit
        self.budgeter = budgeter
        self.in_flight = 0  # read into the gauge at scrape time: no metric write per request
        self._children: dict[tuple[str, str, int, int], tuple[Any, Any, Any, Any]] = {}  # see `_labelled`

    # -- model scope ----------------------------------------------------------------------------------

    def permitted(self, principal: Principal) -> list[str]:
        return [g for g in self.router.groups if principal.may_use(g)]

    def check_model(self, principal: Principal, model: str) -> None:
        """Raise OpenAI's 404 model_not_found unless the model is served and the key may use it."""
        if model not in self.router.groups or not principal.may_use(model):
            raise model_not_found(model, self.permitted(principal))

    def resolve(self, ctx: RequestContext, model: str, asked_fallbacks: list[str] | None = None) -> None:
        """Set the context's group and the fallbacks it may reach, each checked against the key's scope:
        per-request fallbacks the key may not use are refused like an unknown model; configured ones the
        key may not use are skipped."""
        assert ctx.principal is not None
        self.check_model(ctx.principal, model)
        ctx.group = ctx.attempt.group = model
        if asked_fallbacks is None:
            ctx.fallbacks = [g for g in self.router.fallbacks.get(model, ()) if ctx.principal.may_use(g)]
            return
        for name in asked_fallbacks:
            if name not in self.router.groups or not ctx.principal.may_use(name):
                raise model_not_found(name, [], param="fallbacks")
        ctx.fallbacks = list(asked_fallbacks)

    # -- budgets and rate limits ----------------------------------------------------------------------

    async def reserve(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> None:
        """Reserve the request's estimate against the key's limits (no-op for keys without limits);
        raises the 429/503 GatewayError the client gets."""
        p = ctx.principal
        if p is None or not p.limits or self.budgeter is None:
            return
        ctx.reservation = await self.budgeter.reserve_tokens(
            p.limits, self.router.groups[ctx.group], prompt_tokens, completion_tokens
        )
        ctx.headers += rate_headers(ctx.reservation)  # x-ratelimit-* on every answer (keys with rpm/tpm)

    async def settle(self, ctx: RequestContext) -> None:
        if ctx.reservation is None or self.budgeter is None or ctx.event is None:
            return
        reservation, ctx.reservation = ctx.reservation, None  # settled once
        event = ctx.event
        await self.budgeter.settle(reservation, event.usage, event.cost_pusd, event.ts)

    # -- the upstream call ----------------------------------------------------------------------------

    async def call(self, ctx: RequestContext, fn: Callable[[Provider], Awaitable[T]]) -> T:
        """One unary provider call, routed with retries, fallbacks and cooldowns."""
        result: T = await self.router.call(ctx.group, fn, ctx.attempt, ctx.fallbacks)
        return result

    async def open_stream(self, ctx: RequestContext, opener: Opener | None = None) -> StreamStart:
        """Open a provider stream (default: `chat_stream(ctx.body)`) through the same routing loop: a
        failure before the first item is retried or falls back like a unary call."""
        open_it: Opener = opener or (lambda p: p.chat_stream(ctx.body))
        return await self.router.open_stream(ctx.group, open_it, ctx.attempt, ctx.fallbacks)

    def failure(self, ctx: RequestContext, exc: UpstreamError | NoDeploymentAvailable) -> GatewayError:
        """The client-facing error for a final upstream failure, recorded on the outcome (the same on /v1
        and in process)."""
        if isinstance(exc, NoDeploymentAvailable):
            err = GatewayError(
                429, str(exc), code="no_deployment_available", headers=retry_after_header(exc.retry_after)
            )
        else:
            err = from_upstream(exc)
        ctx.outcome.status = err.status
        ctx.outcome.error_type = err.code or err.type
        return err

    # -- running and ending -----------------------------------------------------------------------------

    def begin(self, ctx: RequestContext) -> None:
        self.in_flight += 1

    async def end(self, ctx: RequestContext, exc: BaseException | None = None) -> UsageEvent:
        """Ledger the request (once) and settle its reservation; `exc`: what ended it, if it crashed."""
        if exc is not None:
            crashed(ctx.outcome, exc)
        try:
            event = self.finish(ctx)
        finally:
            self.in_flight -= 1  # after the event: in_flight 0 means every event is submitted
        await self.settle(ctx)
        return event

    async def run(self, ctx: RequestContext, work: Callable[[], Awaitable[T]]) -> T:
        self.begin(ctx)
        try:
            result = await work()
        except BaseException as exc:
            await self.end(ctx, exc)
            raise
        await self.end(ctx)
        return result

    async def refuse(self, ctx: RequestContext, err: GatewayError) -> None:
        """A request refused before any upstream call is a ledger row too: one queued event, no DB wait."""
        ctx.outcome.status = err.status
        ctx.outcome.error_type = err.code or err.type
        self.finish(ctx)
        await self.settle(ctx)

    def sender(self, ctx: RequestContext, send: Callable[[Any], Awaitable[None]]) -> Any:
        """`send`, but the usage event is submitted (journaled) before the response's last bytes go out:
        a client that holds a whole answer finds its row in the ledger even if the process is killed."""

        async def send_last(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.finish(ctx)
            await send(message)

        return send_last

    def finish(self, ctx: RequestContext) -> UsageEvent:
        """Metrics and the one usage event of the request (idempotent)."""
        if ctx.event is not None:
            return ctx.event
        latency = time.perf_counter() - ctx.t0
        attempt, outcome, principal = ctx.attempt, ctx.outcome, ctx.principal
        dep = attempt.deployment
        usage = outcome.usage or Usage()
        self._observe(ctx.endpoint, attempt, outcome, usage, latency)
        event = UsageEvent(
            request_id=ctx.request_id,
            ts=time.time(),
            endpoint=ctx.endpoint,
            group=attempt.group or None,
            deployment=dep,
            # No principal: an unknown or missing key (401), ledgered without one.
            key_id=(principal.key_id or principal.id) if principal else None,
            user_id=principal.user_id if principal else None,
            project_id=principal.project_id if principal else None,
            usage=usage,
            latency_s=latency,
            ttft_s=outcome.ttft,
            status=outcome.status,
            error_type=outcome.error_type,
            stream=ctx.stream,
            retries=attempt.retries,
            busy_s=attempt.billed_s(),
            path=attempt.path(),
        )
        for name, value in ctx.ledger.items():
            setattr(event, name, value)  # slots: a field the event does not have fails loudly
        if dep is None:
            event.cost_pusd, event.priced = 0, True  # no upstream was called: nothing to pay
        elif ctx.reservation is not None and self.budgeter is not None:
            # Budgets settle with the exact cost the ledger records, so the two always agree.
            event.cost_pusd = self.budgeter.cost(dep, usage, event.billed_s, outcome.status >= 400)
            event.priced = True
        ctx.event = event
        self.submit(event)
        return event

    def _observe(
        self, endpoint: int, attempt: Attempt, outcome: Outcome, usage: Usage, latency: float
    ) -> None:
        dep = attempt.deployment
        provider = dep.provider_label if dep else "-"
        label = attempt.group or "-"  # never a name the client made up: metric labels stay bounded
        key = (label, provider, outcome.status, endpoint)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._labelled(*key)
        count, request_latency, upstream_latency, ttft = children
        count.inc()
        request_latency.observe(latency)
        if dep is not None:
            upstream_latency.observe(time.perf_counter() - attempt.upstream_started)
            self.router.add_tokens(dep, usage.prompt_tokens + usage.completion_tokens)
        if outcome.ttft is not None:
            ttft.observe(outcome.ttft)

    def _labelled(self, label: str, provider: str, status: int, endpoint: int) -> tuple[Any, Any, Any, Any]:
        """The metric children of one (group, provider, status, endpoint): `labels()` looks them up under a
        lock and builds a key each call, a good part of a request's metrics cost; the label sets are bounded
        (groups, providers, statuses, endpoints), and so is this cache."""
        m = self.metrics
        return (
            m.requests.labels(label, provider, str(status), schema.ENDPOINTS.get(endpoint, "other")),
            m.request_latency.labels(label),
            m.upstream_latency.labels(label, provider),
            m.ttft.labels(label),
        )


def model_not_found(model: str, permitted: list[str], param: str = "model") -> GatewayError:
    """OpenAI's answer for a model that does not exist and for one the key may not use, alike: the key
    learns nothing about models outside its scope (a hint names only models it may use)."""
    close = difflib.get_close_matches(model[:200], permitted, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return GatewayError(
        404,
        f"The model `{clip(model, 100)}` does not exist or you do not have access to it.{hint}",
        param=param,
        code="model_not_found",
    )


def crashed(outcome: Outcome, exc: BaseException) -> None:
    """A request that ended by an exception is never ledgered as the default 200."""
    if outcome.status >= 400:
        return
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        outcome.status, outcome.error_type = 499, "client_disconnected"
    else:
        outcome.status, outcome.error_type = 500, "internal_error"
