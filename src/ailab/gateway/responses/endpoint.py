"""`POST /v1/responses` as a thin adapter over the request cycle, and the stored-response routes
(`GET`/`DELETE /v1/responses/{response_id}`, `GET …/input_items`).

Per deployment the cycle picks, the call is native (`native.py`: OpenAI, Azure) or translated to chat
(`to_chat.py`, answered via `from_chat.py` / `shape.py`); a fallback may cross from one to the other.
Budgets, rate limits, model scope and the ledger row (endpoint `responses`) are the cycle's, as for chat.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from ailab.gateway.asgi import Receive, Scope, Send, send_json
from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Endpoint, Route
from ailab.gateway.errors import GatewayError
from ailab.gateway.providers.base import Provider
from ailab.gateway.responses import native
from ailab.gateway.responses.from_chat import from_chat, from_responses_usage
from ailab.gateway.responses.request import normalise, validate
from ailab.gateway.responses.shape import ResponsesShape
from ailab.gateway.responses.state import ResponsesState
from ailab.gateway.responses.store import ResponseStore, Stored
from ailab.gateway.responses.to_chat import to_chat
from ailab.gateway.types import StreamItem, Usage
from ailab.ledger import ENDPOINT_RESPONSES

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI

log = logging.getLogger("ailab.gateway")


def install(api: GatewayAPI, store: ResponseStore) -> None:
    """Serve the Responses API on `api`, with responses stored in `store`."""
    for cls in (CreateResponse, ResponseById, InputItems):
        route = cls(api)
        route.store = store
        api.add(route)


def not_found(response_id: str, param: str = "response_id") -> GatewayError:
    what = "Previous response" if param == "previous_response_id" else "Response"
    return GatewayError(
        404 if param == "response_id" else 400,
        f"{what} with id '{response_id[:100]}' not found.",
        param=param,
        code="not_found" if param == "response_id" else "previous_response_not_found",
        type="invalid_request_error",
    )


def owner(ctx: RequestContext) -> str:
    assert ctx.principal is not None
    return ctx.principal.name


class CreateResponse(Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/responses"),)
    endpoint_id = ENDPOINT_RESPONSES
    stream_shape = ResponsesShape
    store: ResponseStore

    # Endpoint.handle runs the cycle; these hooks add the Responses API's own steps: the previous response
    # is read from the store (`pre_call`), a group that would need an untranslatable request is refused
    # (`admit`), and the response is stored before the answer's last bytes (`finishing`).

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        validate(body)
        ctx.scratch["responses"] = ResponsesState(body, normalise(body["input"]))
        ctx.stream = bool(body.get("stream"))
        return str(body["model"])

    async def pre_call(self, ctx: RequestContext) -> None:
        state: ResponsesState = ctx.scratch["responses"]
        state.history = await self._history(ctx, state.body)
        ctx.scratch["untranslatable"] = self._chat_body(ctx, state)

    def admit(self, ctx: RequestContext) -> None:
        untranslatable: GatewayError | None = ctx.scratch.pop("untranslatable", None)
        if untranslatable is not None and self._translates(ctx.group):
            raise untranslatable

    async def _history(self, ctx: RequestContext, body: dict[str, Any]) -> list[dict[str, Any]]:
        previous = body.get("previous_response_id")
        if not previous:
            return []
        stored = await self.store.find(previous, owner(ctx))
        if stored is None:
            raise not_found(previous, "previous_response_id")
        return stored.conversation()

    def _chat_body(self, ctx: RequestContext, state: ResponsesState) -> GatewayError | None:
        """Set the chat request for translated deployments (also what budgets estimate from). What chat
        cannot express is returned: refused only if the group has a deployment that needs translating."""
        try:
            ctx.body = to_chat(state.body, state.history, state.items)
            return None
        except GatewayError as err:
            text = " ".join(
                str(p.get("text", "")) for i in state.conversation for p in i.get("content") or ()
            )
            limit = state.body.get("max_output_tokens")
            ctx.body = {"model": state.body["model"], "messages": [{"role": "user", "content": text}]}
            if limit:
                ctx.body["max_completion_tokens"] = limit
            return err

    def _translates(self, group: str) -> bool:
        return any(not native.speaks_responses(self._provider(d.id)) for d in self.cycle.router.groups[group])

    def _provider(self, deployment_id: str) -> Provider:
        return self.cycle.router.providers[deployment_id]

    def finishing(self, ctx: RequestContext, send: Send) -> Send:
        """`send`, but a finished response is stored before the answer's last bytes go out, so a client
        can follow up (previous_response_id) the moment it holds the answer. Saving only buffers it
        (the store writes behind, in batches). A response the client asked not to store (`store: false`)
        goes out as it is."""
        state: ResponsesState = ctx.scratch["responses"]
        if not state.store:
            return send

        async def send_stored(message: Any) -> None:
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and state.final is not None:
                stored = Stored(
                    state.final["id"],
                    owner(ctx),
                    state.final,
                    state.conversation,
                    len(state.items),
                    state.final_json,
                )
                await self.store.save(stored)
            await send(message)

        return send_stored

    # -- the provider calls (the cycle routes, retries and falls back around them) --------------------

    def call(self, provider: Provider, ctx: RequestContext) -> Awaitable[dict[str, Any]]:
        state: ResponsesState = ctx.scratch["responses"]
        state.native = native.speaks_responses(provider)
        if state.native:
            return native.create(provider, state.body, state.conversation)
        return provider.chat(ctx.body)

    def open(self, provider: Provider, ctx: RequestContext) -> AsyncIterator[StreamItem]:
        state: ResponsesState = ctx.scratch["responses"]
        state.native = native.speaks_responses(provider)
        if state.native:
            return native.stream(provider, state.body, state.conversation)
        return provider.chat_stream(ctx.body)

    def usage(self, result: dict[str, Any], ctx: RequestContext) -> Usage | None:
        if result.get("object") != "response":
            return super().usage(result, ctx)
        usage = from_responses_usage(result.get("usage"))
        if usage is not None and result["usage"].pop("estimated", False):
            usage.estimated = True
        return usage

    def answer(self, result: dict[str, Any], ctx: RequestContext) -> Any:
        state: ResponsesState = ctx.scratch["responses"]
        if result.get("object") == "response":
            state.final = state.fix_native(result)
        else:
            state.final = from_chat(state.body, result, state.response_id, ctx.outcome.usage or Usage())
            state.final["model"] = ctx.group
        # Encoded once, for the answer and the stored row alike.
        state.final_json = orjson.dumps(state.final)
        return orjson.Fragment(state.final_json)


# -- stored responses ---------------------------------------------------------------------------------


class StoredRoute(Route):
    store: ResponseStore

    async def refuse(self, send: Send, err: GatewayError, ctx: RequestContext) -> None:
        await self.send_error(send, err, ctx)  # reading the store is not a model call: no ledger row

    async def stored(self, ctx: RequestContext) -> Stored:
        response_id = ctx.params.get("response_id", "")
        found = await self.store.find(response_id, owner(ctx))
        if found is None:
            raise not_found(response_id)
        return found


class ResponseById(StoredRoute):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (
        ("GET", "/v1/responses/{response_id}"),
        ("DELETE", "/v1/responses/{response_id}"),
    )

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] == "DELETE":
                response_id = ctx.params.get("response_id", "")
                if not await self.store.remove(response_id, owner(ctx)):
                    raise not_found(response_id)
                payload: Any = {"id": response_id, "object": "response.deleted", "deleted": True}
            else:
                payload = (await self.stored(ctx)).response
        except GatewayError as err:
            await self.refuse(send, err, ctx)
            return
        await send_json(send, 200, payload, ctx.response_headers())


class InputItems(StoredRoute):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("GET", "/v1/responses/{response_id}/input_items"),)

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            limit, order, after = page_params(scope)
            items = (await self.stored(ctx)).input_items
        except GatewayError as err:
            await self.refuse(send, err, ctx)
            return
        await send_json(send, 200, page(items, limit, order, after), ctx.response_headers())


def page_params(scope: Scope) -> tuple[int, str, str | None]:
    from urllib.parse import parse_qs

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw_limit = (query.get("limit") or ["20"])[0]
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise GatewayError(
            400, "limit: expected an integer from 1 to 100", param="limit", code="invalid_value"
        )
    order = (query.get("order") or ["desc"])[0]
    if order not in ("asc", "desc"):
        raise GatewayError(400, "order: expected 'asc' or 'desc'", param="order", code="invalid_value")
    return int(raw_limit), order, (query.get("after") or [None])[0]


def page(items: list[dict[str, Any]], limit: int, order: str, after: str | None) -> dict[str, Any]:
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [i.get("id") for i in ordered]
        if after not in ids:
            raise GatewayError(
                400, f"after: no input item with id '{after[:100]}'", param="after", code="invalid_value"
            )
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
