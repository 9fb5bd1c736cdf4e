"""Request body limits for everything off the hot path (the admin API, knowledge, health): a body over its
route's limit is a 413 before it is read whole. A declared Content-Length is checked before the app runs;
a body without one (chunked) is counted as it streams in, and the app gets the 413 from `receive()` as soon
as the count passes the limit. /v1 bodies are limited by the gateway itself (`read_json`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ailab.gateway import GatewayError
from ailab.server.admin.deps import ApiError

# Logging in carries a name and a password: no reason to accept more than this, before any auth work.
AUTH_LIMIT = 64 * 1024
_UPLOAD = re.compile(r"^/v1/knowledge/collections/[^/]+/documents/?$")


@dataclass(frozen=True)
class BodyLimits:
    json: int  # every other body (admin API, knowledge JSON)
    upload: int  # a multipart upload of documents, all files together

    def for_request(self, scope: Scope) -> int:
        path: str = scope["path"]
        if path.startswith("/api/auth/"):
            return min(AUTH_LIMIT, self.json)
        if _UPLOAD.match(path) and _content_type(scope).startswith(b"multipart/"):
            return self.upload
        return self.json


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        message = f"request body is larger than the limit of {limit} bytes"
        # Close the connection after the answer: the rest of the body is not read for the next request.
        super().__init__(413, message, "body_too_large", headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware in front of the admin app enforcing `BodyLimits`."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:  # the app answered already and read on: nothing left to tell the client
                return
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = orjson.dumps(GatewayError(413, str(BodyTooLarge(limit).detail), code="body_too_large").body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread rest of the body must not be taken for the next request
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v).decode("latin-1").strip()
    return None


def _content_type(scope: Scope) -> bytes:
    value = _header(scope, b"content-type")
    return value.lower().encode() if value else b""
