"""The OpenAI-compatible routes, as raw ASGI on the hot path: auth from memory, bounded body, light
validation, the router, the response; the usage event goes to the ledger queue without waiting.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ailab.access.auth import Authenticator
from ailab.access.policy import decide, holds
from ailab.access.principal import Principal
from ailab.apps import gateway as apps_gateway  # apps (ailab.apps): `app:NAME` and /v1/apps/NAME/…
from ailab.apps.service import AppCall, acting
from ailab.gateway.asgi import Message, Receive, Scope, Send, header, read_json, send_error, send_json
from ailab.gateway.errors import GatewayError, clip, from_upstream, retry_after_header
from ailab.gateway.limits import Budgeter
from ailab.gateway.router import Attempt, NoDeploymentAvailable, Router
from ailab.gateway.streaming import relay_stream
from ailab.gateway.types import UpstreamError, Usage
from ailab.gateway.validate import validate_chat, validate_embeddings
from ailab.ledger.events import CURRENT_APP, UsageEvent
from ailab.ledger.schema import ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS
from ailab.observability.metrics import Metrics

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
log = logging.getLogger("ailab.gateway")


@dataclass
class Outcome:
    """Filled in while a request runs; turned into metrics and one ledger event at the end."""

    status: int = 200
    error_type: str | None = None
    usage: Usage | None = None
    ttft: float | None = None
    app: str | None = None  # the app the call was made for (ailab.apps), ledgered with it


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
        self.submit = submit
        self.max_body = max_body
        self.created = created
        self.budgeter = budgeter
        self.in_flight = 0  # read into the gauge at scrape time: no metric write per request
        self.apps: Any = None  # ailab.apps.AppService, set by the lab's state once apps are loaded
        chat, emb, models = (guarded(h) for h in (self.chat_completions, self.embeddings, self.list_models))
        self.routes: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            self.routes[("POST", f"{prefix}/chat/completions")] = chat
            self.routes[("POST", f"{prefix}/embeddings")] = emb
            self.routes[("GET", f"{prefix}/models")] = models

    def match(self, scope: Scope) -> Handler | None:
        found = self.routes.get((scope["method"], scope["path"].rstrip("/") or "/"))
        if found is None and scope["method"] == "POST":
            name = apps_gateway.route_app(scope["path"])  # POST /v1/apps/{name}/chat/completions
            if name is not None:
                scope["ailab.app"] = name
                return self.routes[("POST", "/v1/chat/completions")]
        return found

    def allowed_methods(self, path: str) -> list[str]:
        path = path.rstrip("/") or "/"
        return [m for m, p in self.routes if p == path]

    # -- routes ---------------------------------------------------------------------------------------

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal = self._authenticate(scope)
        except GatewayError as err:
            await send_error(send, err)
            return
        data = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "ailab"}
            for name in self.router.groups
            if principal.may_use(name)
        ]
        if self.apps is not None:  # the apps it may use, as the models they are to an OpenAI client
            data += [
                {"id": s.alias, "object": "model", "created": self.created, "owned_by": "ailab-app"}
                for s in self.apps.visible(principal)
            ]
        await send_json(send, 200, {"object": "list", "data": data})

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(scope, receive, send, ENDPOINT_CHAT)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(scope, receive, send, ENDPOINT_EMBEDDINGS)

    # -- the shared request cycle ---------------------------------------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send, endpoint: int) -> None:
        request_id = os.urandom(12).hex()
        t0 = time.perf_counter()
        principal: Principal | None = None
        group = ""
        app_call: AppCall | None = None
        try:
            principal = self._authenticate(scope, check=False)
            self._may_use_models(principal)  # after: a 403 is ledgered against the key it names
            body = await read_json(scope, receive, self.max_body)
            route_app = scope.get("ailab.app")
            if endpoint == ENDPOINT_CHAT and apps_gateway.wants_app(body, route_app):
                app_call = await apps_gateway.resolve(self.apps, principal, body, route_app)
                body = app_call.body
            validate_chat(body) if endpoint == ENDPOINT_CHAT else validate_embeddings(body)
            scoped = acting(principal) if app_call else principal  # an app grants its model group
            group = self._group(body["model"], scoped)
            extra_fallbacks = self._fallbacks(group, body.pop("fallbacks", None), scoped)
        except GatewayError as err:
            await self._refuse(send, err, request_id, endpoint, principal, group, t0)
            return
        reservation = None
        if principal.limits and self.budgeter is not None:
            try:
                reservation = await self.budgeter.reserve(
                    principal.limits, body, self.router.groups[group], endpoint == ENDPOINT_CHAT
                )
            except GatewayError as err:
                await self._refuse(send, err, request_id, endpoint, principal, group, t0)
                return
        attempt = Attempt(group)
        outcome = Outcome(app=app_call.name if app_call else None)
        stream = endpoint == ENDPOINT_CHAT and bool(body.get("stream"))
        finished: list[UsageEvent] = []

        def finish() -> UsageEvent:
            if not finished:
                finished.append(
                    self._finish(request_id, endpoint, principal, attempt, outcome, stream, t0, reservation)
                )
            return finished[0]

        async def send_last(message: Message) -> None:
            # The usage event is submitted (journaled) before the response's last bytes go out: a client
            # that holds a whole answer finds its row in the ledger even if the process is killed after.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finish()
            await send(message)

        self.in_flight += 1
        try:
            if stream:
                out = apps_gateway.stream_sender(app_call, send_last) if app_call else send_last
                await self._stream(body, attempt, outcome, extra_fallbacks, receive, out, request_id, t0)
            else:
                await self._unary(
                    body, endpoint, attempt, outcome, extra_fallbacks, send_last, request_id, app_call
                )
        except BaseException as exc:
            _crashed(outcome, exc)
            raise
        finally:
            try:
                event = finish()
            finally:
                self.in_flight -= 1  # after the event: in_flight 0 means every event is submitted
            if reservation is not None and self.budgeter is not None:
                await self.budgeter.settle(reservation, event.usage, event.cost_pusd, event.ts)

    async def _refuse(
        self,
        send: Send,
        err: GatewayError,
        request_id: str,
        endpoint: int,
        principal: Principal | None,
        group: str,
        t0: float,
    ) -> None:
        """A request refused before any upstream call is a ledger row too: one queued event, no DB wait."""
        await send_error(send, err, request_id)
        outcome = Outcome(status=err.status, error_type=err.code or err.type)
        self._finish(request_id, endpoint, principal, Attempt(group), outcome, False, t0, None)

    async def _unary(
        self,
        body: dict[str, Any],
        endpoint: int,
        attempt: Attempt,
        outcome: Outcome,
        fallbacks: list[str] | None,
        send: Send,
        request_id: str,
        app_call: AppCall | None = None,
    ) -> None:
        def call(p: Any) -> Awaitable[dict[str, Any]]:
            return p.chat(body) if endpoint == ENDPOINT_CHAT else p.embed(body)  # type: ignore[no-any-return]

        try:
            result: dict[str, Any] = await self.router.call(attempt.group, call, attempt, fallbacks)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await self._fail(send, exc, outcome, request_id)
            return
        usage = result.get("usage")
        outcome.usage = Usage.from_openai(usage)
        if isinstance(usage, dict) and usage.pop("estimated", False) and outcome.usage:
            outcome.usage.estimated = True
        if app_call is not None:
            result = apps_gateway.unary_answer(app_call, result)
        await send_json(send, 200, result, [(b"x-request-id", request_id.encode())])

    async def _stream(
        self,
        body: dict[str, Any],
        attempt: Attempt,
        outcome: Outcome,
        fallbacks: list[str] | None,
        receive: Receive,
        send: Send,
        request_id: str,
        t0: float,
    ) -> None:
        try:
            start = await self.router.open_stream(attempt.group, body, attempt, fallbacks)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            await self._fail(send, exc, outcome, request_id)
            return
        await relay_stream(start, body, outcome, receive, send, request_id, t0)

    async def _fail(
        self, send: Send, exc: UpstreamError | NoDeploymentAvailable, outcome: Outcome, request_id: str
    ) -> None:
        if isinstance(exc, NoDeploymentAvailable):
            err = GatewayError(
                429, str(exc), code="no_deployment_available", headers=retry_after_header(exc.retry_after)
            )
            outcome.error_type = "no_deployment_available"
        else:
            err = from_upstream(exc)
            outcome.error_type = err.code
        outcome.status = err.status
        await send_error(send, err, request_id)

    # -- helpers --------------------------------------------------------------------------------------

    def _authenticate(self, scope: Scope, check: bool = True) -> Principal:
        principal = self.auth.authenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if principal is None:
            raise GatewayError(
                401, "missing or invalid API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        if check:
            self._may_use_models(principal)
        return principal

    @staticmethod
    def _may_use_models(principal: Principal) -> None:
        if not holds(principal, "models.use"):
            raise GatewayError(403, decide(principal, "models.use").reason, code="permission_denied")

    def _group(self, model: str, principal: Principal) -> str:
        self.check_model(principal, model)
        return model

    def check_model(self, principal: Principal, model: str) -> None:
        """Raise OpenAI's 404 model_not_found unless the model is served and the key may use it (the
        knowledge routes call this too, so both answer alike)."""
        if model not in self.router.groups or not principal.may_use(model):
            raise model_not_found(model, [g for g in self.router.groups if principal.may_use(g)])

    def _fallbacks(self, group: str, asked: list[str] | None, principal: Principal) -> list[str]:
        """Every group the request may reach, each checked against the key's model scope: per-request
        fallbacks the key may not use are refused like an unknown model; configured ones are skipped."""
        if asked is None:
            return [g for g in self.router.fallbacks.get(group, ()) if principal.may_use(g)]
        for name in asked:
            if name not in self.router.groups or not principal.may_use(name):
                raise model_not_found(name, [], param="fallbacks")
        return asked

    def _finish(
        self,
        request_id: str,
        endpoint: int,
        principal: Principal | None,
        attempt: Attempt,
        outcome: Outcome,
        stream: bool,
        t0: float,
        reservation: Any,
    ) -> UsageEvent:
        latency = time.perf_counter() - t0
        dep = attempt.deployment
        usage = outcome.usage or Usage()
        self._observe(attempt, outcome, usage, latency)
        event = UsageEvent(
            request_id=request_id,
            ts=time.time(),
            endpoint=endpoint,
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
            stream=stream,
            retries=attempt.retries,
            busy_s=attempt.billed_s(),
            # An app call, or a call an app makes while it is prepared (retrieval's embeddings).
            app=outcome.app or CURRENT_APP.get(),
        )
        if dep is None:
            event.cost_pusd, event.priced = 0, True  # no upstream was called: nothing to pay
        elif reservation is not None and self.budgeter is not None:
            # Budgets settle with the exact cost the ledger records, so the two always agree.
            event.cost_pusd = self.budgeter.cost(dep, usage, event.billed_s, outcome.status >= 400)
            event.priced = True
        self.submit(event)
        return event

    def _observe(self, attempt: Attempt, outcome: Outcome, usage: Usage, latency: float) -> None:
        dep = attempt.deployment
        provider = dep.provider_label if dep else "-"
        m = self.metrics
        label = attempt.group or "-"  # never a name the client made up: metric labels stay bounded
        m.requests.labels(label, provider, str(outcome.status)).inc()
        m.request_latency.labels(label).observe(latency)
        if dep is not None:
            m.upstream_latency.labels(attempt.group, provider).observe(
                time.perf_counter() - attempt.upstream_started
            )
            self.router.add_tokens(dep, usage.prompt_tokens + usage.completion_tokens)
        if outcome.ttft is not None:
            m.ttft.labels(attempt.group).observe(outcome.ttft)


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


def _crashed(outcome: Outcome, exc: BaseException) -> None:
    """A request that ended by an exception is never ledgered as the default 200."""
    if outcome.status >= 400:
        return
    if isinstance(exc, asyncio.CancelledError):
        outcome.status, outcome.error_type = 499, "client_disconnected"
    else:
        outcome.status, outcome.error_type = 500, "internal_error"


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
