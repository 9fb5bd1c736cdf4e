"""How the gateway serves apps, in one place: `app:NAME` in the model field of a chat body (any endpoint
that hands the cycle a chat body gets apps for free), or the route `/v1/apps/NAME/chat/completions`.

The hook rewrites the body into the app's (its model group, prompt, parameters, sources) and names the
app for the ledger; the answer gets the app's name and, for a RAG app, `citations` shaped as the
knowledge routes give them: a field of the reply, or, in a stream, one last chunk before `[DONE]` with
`"choices": []` and the `citations` (the same place the knowledge chat route puts them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ailab.access.principal import Principal
from ailab.apps.models import ALIAS_PREFIX
from ailab.apps.prompt import AppRequestError
from ailab.apps.service import AppCall, AppService
from ailab.gateway.errors import GatewayError
from ailab.ledger.events import CURRENT_APP

ROUTE = re.compile(r"^/v1/apps/([^/]{1,100})/chat/completions/?$")
Send = Callable[[Any], Awaitable[None]]
DONE = b"data: [DONE]\n\n"


def route_app(path: str) -> str | None:
    m = ROUTE.match(path)
    return m.group(1) if m else None


def wants_app(body: dict[str, Any], route_name: str | None) -> bool:
    model = body.get("model")
    return route_name is not None or (isinstance(model, str) and model.startswith(ALIAS_PREFIX))


async def resolve(
    service: AppService | None, principal: Principal, body: dict[str, Any], route_name: str | None
) -> AppCall:
    """The app call for this body (its rewritten body in `.body`); a GatewayError in OpenAI's shape."""
    if route_name is not None:
        body["model"] = ALIAS_PREFIX + route_name  # the route names the app; a model field is ignored
    name = str(body["model"])[len(ALIAS_PREFIX) :]
    if service is None:
        message = f"The app `{name[:100]}` does not exist."
        raise GatewayError(404, message, param="model", code="app_not_found")
    token = CURRENT_APP.set(name)
    try:
        return await service.prepare(principal, name, body)
    except AppRequestError as exc:
        raise GatewayError(exc.status, str(exc), param=exc.param, code=exc.code) from None
    finally:
        CURRENT_APP.reset(token)


def unary_answer(call: AppCall, result: dict[str, Any]) -> dict[str, Any]:
    return call.finish_reply(result)


def stream_sender(call: AppCall, send: Send) -> Send:
    """`send`, with the citations chunk put in before `[DONE]`. The deltas are read off the SSE bytes as
    they go out, so this works whatever produced them (parsed chunks or an upstream's raw events)."""
    if call.hits is None:
        return send
    parts: list[str] = []
    last: dict[str, Any] = {}
    tail = b""

    def read(data: bytes) -> None:
        nonlocal tail
        events = (tail + data).split(b"\n\n")
        tail = events.pop()
        for event in events:
            for line in event.split(b"\n"):
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                try:
                    chunk = orjson.loads(line[6:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(chunk, dict):
                    last.update({k: chunk[k] for k in ("id", "created", "model") if k in chunk})
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if isinstance(text, str):
                            parts.append(text)

    async def sending(message: Any) -> None:
        if message.get("type") == "http.response.body":
            data = bytes(message.get("body", b""))
            if not message.get("more_body") and data.endswith(DONE):
                read(data[: -len(DONE)])
                trailer = call.trailer("".join(parts), last)
                extra = b"data: " + orjson.dumps(trailer) + b"\n\n" if trailer else b""
                message = {**message, "body": data[: -len(DONE)] + extra + DONE}
            else:
                read(data)
        await send(message)

    return sending
