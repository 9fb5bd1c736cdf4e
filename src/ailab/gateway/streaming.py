"""Relay an upstream stream to the client, shaped by the endpoint.

Providers yield OpenAI `chat.completion.chunk` dicts (or `RawEvents`, upstream OpenAI SSE forwarded byte
for byte) and always end with a usage chunk; the relay takes the usage for the ledger and hands each item
to the endpoint's `StreamShape`, which decides the bytes the client sees (OpenAI chat SSE, legacy
completions, Anthropic events …), the first and last events, and the error event.
A failure after the first byte (an upstream error, a cut connection, a body that ends before any choice
finished) ends the stream with the shape's error event, and is ledgered as a failure with the tokens
delivered so far (estimated, and flagged so, when the upstream reported none).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ailab.gateway.asgi import SSE_HEADERS, Receive, Send
from ailab.gateway.cycle import RequestContext, usage_of
from ailab.gateway.errors import GatewayError, from_upstream
from ailab.gateway.providers.base import estimate_tokens, messages_text
from ailab.gateway.providers.openai_compat import streamed_text
from ailab.gateway.router import StreamStart
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError, Usage

DONE = b"data: [DONE]\n\n"


@dataclass
class Seen:
    """What the client was sent, kept cheaply: parsed deltas' text, and raw events parsed only if needed."""

    text: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    finishing: bool = False  # the last write has begun

    def completion_text(self) -> str:
        return "".join(self.text) + (streamed_text(self.raw) if self.raw else "")


class StreamShape:
    """How an endpoint's stream looks on the wire. One instance per request (a shape may keep state, e.g.
    content-block indices). The default is OpenAI chat SSE: chunks as `data:` events, usage shown only
    when the client asked (`stream_options.include_usage`), `data: [DONE]` last."""

    headers: list[tuple[bytes, bytes]] = SSE_HEADERS

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.include_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))

    def first(self) -> bytes:
        """Events sent before the first chunk (e.g. Anthropic's `message_start`); b"" for none."""
        return b""

    def chunk(self, chunk: dict[str, Any], seen: Seen) -> bytes | None:
        """The bytes for one parsed chunk (its usage is already on the outcome); None to send nothing.
        Record delivered content in `seen.text` so a cut stream can be estimated."""
        view = self._client_view(chunk, seen)
        return None if view is None else b"data: " + orjson.dumps(view) + b"\n\n"

    def raw(self, item: RawEvents) -> bytes:
        """Upstream events forwarded as they came (OpenAI chat SSE from an OpenAI-compatible upstream)."""
        return item.wire

    def last(self) -> bytes:
        """The events that end a finished stream."""
        return DONE

    def error(self, err: GatewayError) -> bytes:
        """The event for a failure after the first byte. No [DONE] after it: [DONE] means finished."""
        return b"data: " + orjson.dumps(err.body()) + b"\n\n"

    def estimate(self, seen: Seen) -> Usage:
        """Usage when the upstream reported none (cut stream, disconnect): what was asked and delivered."""
        return Usage(
            prompt_tokens=estimate_tokens(messages_text(self.ctx.body.get("messages"))),
            completion_tokens=estimate_tokens(seen.completion_text()),
            estimated=True,
        )

    def _client_view(self, chunk: dict[str, Any], seen: Seen) -> dict[str, Any] | None:
        if isinstance(chunk.get("usage"), dict):
            if not self.include_usage:
                if not chunk.get("choices"):
                    return None
                del chunk["usage"]
            return chunk
        if not self.include_usage and "usage" in chunk:
            del chunk["usage"]
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                seen.text.append(content)
        return chunk


async def relay_stream(
    start: StreamStart, ctx: RequestContext, shape: StreamShape, receive: Receive, send: Send
) -> None:
    """Relay while watching `receive()` for the client's disconnect: uvicorn's `send()` returns silently once
    the client is gone, so without the watch the upstream would be read (and billed) to the end."""
    seen = Seen()
    watch = DisconnectWatch(receive, seen)
    try:
        await _relay(start, ctx, shape, send, seen)
    except asyncio.CancelledError:
        if not watch.stop():
            raise  # a cancellation from elsewhere (shutdown): not ours to swallow
        await close_stream(start.rest)  # hang up on the upstream: stop generating what nobody reads
        interrupted(ctx, shape, 499, "client_disconnected", seen)
    else:
        watch.stop()
    finally:
        start.release()


class DisconnectWatch:
    """A task waiting on `receive()`; on `http.disconnect` before the last write it cancels the relaying
    task. `stop()` ends the watch and says whether it fired (and then takes its cancellation back)."""

    def __init__(self, receive: Receive, seen: Seen) -> None:
        self.receive = receive
        self.seen = seen
        self.fired = False
        self.relay = asyncio.current_task()
        self.task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] != "http.disconnect":
                continue
            # Once the last write has begun, the server reports a disconnect for a finished response too.
            if not self.seen.finishing and self.relay is not None:
                self.fired = True
                self.relay.cancel()
            return

    def stop(self) -> bool:
        # The task is let go of: cancelled (often before it first ran, when the whole stream was relayed
        # without waiting), it keeps the error, whose traceback holds `_watch`'s frame and so `self`. Were
        # `self` still holding the task, that would be a reference cycle per request, keeping the request's
        # objects (and the server's, through `receive`) alive until the cyclic GC runs.
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        if self.fired and self.relay is not None:
            self.relay.uncancel()
        return self.fired


async def _relay(start: StreamStart, ctx: RequestContext, shape: StreamShape, send: Send, seen: Seen) -> None:
    outcome = ctx.outcome
    headers = [*shape.headers, *ctx.response_headers()]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunk: StreamItem | None = start.first
    it = start.rest
    held = shape.first()  # sent with the first chunk's bytes (one write)
    try:
        while chunk is not None:
            if isinstance(chunk, RawEvents):
                seen.raw.extend(chunk.payloads)
                wire: bytes | None = shape.raw(chunk)
            else:
                if "usage" in chunk and isinstance(chunk["usage"], dict):
                    outcome.usage = usage_of(chunk)
                wire = shape.chunk(chunk, seen)
            if wire:
                if outcome.ttft is None:
                    outcome.ttft = time.perf_counter() - ctx.t0
                if isinstance(chunk, RawEvents) and chunk.more:
                    held += wire  # more from the same network read follows at once: one write
                else:
                    await send({"type": "http.response.body", "body": held + wire, "more_body": True})
                    held = b""
            chunk = await anext(it, None)
    except UpstreamError as exc:
        seen.finishing = True
        await _end_with_error(send, exc, ctx, shape, seen, held)
        return
    except OSError:
        # The client went away; stop reading the upstream and ledger what was consumed.
        await close_stream(it)
        interrupted(ctx, shape, 499, "client_disconnected", seen)
        return
    if outcome.usage is None:
        interrupted(ctx, shape, 200, None, seen)
    seen.finishing = True
    await send({"type": "http.response.body", "body": held + shape.last(), "more_body": False})


async def _end_with_error(
    send: Send, exc: UpstreamError, ctx: RequestContext, shape: StreamShape, seen: Seen, held: bytes
) -> None:
    err = from_upstream(exc)
    interrupted(ctx, shape, err.status, "stream_interrupted", seen)
    err.code = "stream_interrupted"
    try:
        await send({"type": "http.response.body", "body": held + shape.error(err), "more_body": False})
    except OSError:
        return


def interrupted(ctx: RequestContext, shape: StreamShape, status: int, error: str | None, seen: Seen) -> None:
    outcome = ctx.outcome
    outcome.status = status
    outcome.error_type = error
    if outcome.usage is None:
        # No usage arrived: count what we can see and mark the row estimated rather than invent zeros.
        outcome.usage = shape.estimate(seen)


async def close_stream(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except (UpstreamError, RuntimeError):
            return
