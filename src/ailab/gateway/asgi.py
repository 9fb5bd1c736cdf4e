"""Minimal raw-ASGI I/O for the hot path: read a bounded body, send JSON or SSE. No framework objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from ailab.gateway.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


async def read_json(scope: Scope, receive: Receive, limit: int) -> dict[str, Any]:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise GatewayError(400, "client disconnected while sending the body", code="client_disconnected")
        data = msg.get("body", b"")
        size += len(data)
        if size > limit:
            raise _too_large(limit)
        chunks.append(data)
        if not msg.get("more_body"):
            break
    raw = b"".join(chunks)
    if not raw:
        raise GatewayError(400, "request body is empty: send a JSON object", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "request body must be a JSON object", code="invalid_json")
    return body


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body is larger than the limit of {limit} bytes", code="body_too_large")


async def send_json(
    send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(payload)
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: GatewayError, request_id: str | None = None) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    if request_id:
        extra.append((b"x-request-id", request_id.encode()))
    await send_json(send, err.status, err.body(), extra)
