"""Apps on the request cycle (gateway/cycle.py): a model hook for `app:NAME` (any endpoint that hands the
cycle a chat body, e.g. /v1/chat/completions, serves apps through it), the route
`/v1/apps/{app}/chat/completions`, and `/v1/models` entries for the apps a key may use.

The hook rewrites `ctx.body` into the app's body (ailab.apps.gateway.resolve) and sets the ledger's `app`;
the chat endpoint's answer gets the app's name and a RAG app's `citations` (unary: a field of the reply;
streamed: one last chunk before `[DONE]`, `"choices": []`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from ailab.access import Principal
from ailab.apps.gateway import resolve
from ailab.apps.models import ALIAS_PREFIX
from ailab.apps.service import AppCall, AppService, acting
from ailab.gateway import ChatCompletions, RawEvents, RequestContext, Seen, StreamShape, streamed_text
from ailab.ledger import ENDPOINT_EMBEDDINGS

if TYPE_CHECKING:
    from ailab.gateway import GatewayAPI

KEY = "ailab.app"  # ctx.scratch entry: the AppCall of this request


def app_call(ctx: RequestContext) -> AppCall | None:
    call = ctx.scratch.get(KEY)
    return call if isinstance(call, AppCall) else None


class AppShape(StreamShape):
    """OpenAI chat SSE, plus a RAG app's citations chunk before `[DONE]`."""

    def __init__(self, ctx: RequestContext) -> None:
        super().__init__(ctx)
        call = app_call(ctx)
        self.call = call if call is not None and call.hits is not None else None  # only RAG apps cite
        self.text: list[str] = []
        self.raws: list[bytes] = []
        self.meta: dict[str, Any] = {}

    def chunk(self, chunk: dict[str, Any], seen: Seen) -> bytes | None:
        if self.call is None:  # every plain chat stream passes here: nothing extra
            return super().chunk(chunk, seen)
        self.meta.update({k: chunk[k] for k in ("id", "created", "model") if k in chunk})
        before = len(seen.text)
        out = super().chunk(chunk, seen)
        self.text.extend(seen.text[before:])
        return out

    def raw(self, item: RawEvents) -> bytes:
        if self.call is not None:
            self.raws.extend(item.payloads)
        return super().raw(item)

    def last(self) -> bytes:
        if self.call is None:
            return super().last()
        answer = "".join(self.text) + (streamed_text(self.raws) if self.raws else "")
        if self.raws and not self.meta:
            self.meta = _meta(self.raws[-1])
        trailer = self.call.trailer(answer, self.meta)
        head = b"data: " + orjson.dumps(trailer) + b"\n\n" if trailer else b""
        return head + super().last()


def _meta(payload: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return {k: obj[k] for k in ("id", "created", "model") if k in obj} if isinstance(obj, dict) else {}


class AppChatCompletions(ChatCompletions):
    """/v1/chat/completions with apps' answers, and the app's own route (its model field is ignored)."""

    routes: ClassVar[tuple[tuple[str, str], ...]] = (
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/apps/{app}/chat/completions"),
    )
    stream_shape = AppShape

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        name = ctx.params.get("app")
        if name is not None:
            body["model"] = ALIAS_PREFIX + name
        return super().parse(ctx, body)

    def answer(self, result: dict[str, Any], ctx: RequestContext) -> Any:
        call = app_call(ctx)
        return call.finish_reply(result) if call is not None else result


def install(api: GatewayAPI, service: AppService) -> None:
    async def hook(ctx: RequestContext, model: str) -> str | None:
        if not model.startswith(ALIAS_PREFIX) or ctx.principal is None or ctx.endpoint == ENDPOINT_EMBEDDINGS:
            return None  # not an app (an embeddings request for `app:…` is a plain unknown model)
        call = await resolve(service, ctx.principal, ctx.body, None)
        ctx.body = call.body
        ctx.stream = bool(call.body.get("stream"))
        ctx.ledger["app"] = call.name
        ctx.scratch[KEY] = call
        ctx.principal = acting(ctx.principal)  # the app grants its model group (ids and limits kept)
        group: str = call.body["model"]
        return group

    def listed(principal: Principal) -> list[dict[str, Any]]:
        return [
            {"id": s.alias, "object": "model", "created": api.created, "owned_by": "ailab-app"}
            for s in service.visible(principal)
        ]

    api.model_hooks.append(hook)
    api.model_listers.append(listed)
    api.add(AppChatCompletions(api))
