"""Relay an upstream stream to the client as OpenAI SSE.

The adapters always end with a usage chunk (the gateway needs it for the ledger). The client sees it only if
it asked (`stream_options.include_usage`), exactly as OpenAI would show it; otherwise usage is stripped.
A failure after the first byte (an upstream error, a cut connection, a body that ends before any choice
finished) ends the stream with an OpenAI-style error event and no `[DONE]`, and is ledgered as a failure
with the tokens delivered so far (estimated, and flagged so, when the upstream reported none).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ailab.gateway.asgi import SSE_HEADERS, Receive, Send
from ailab.gateway.errors import from_upstream
from ailab.gateway.providers.base import estimate_tokens, messages_text
from ailab.gateway.providers.openai_compat import streamed_text
from ailab.gateway.router import StreamStart
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError, Usage

if TYPE_CHECKING:
    from ailab.gateway.api import Outcome

DONE = b"data: [DONE]\n\n"


async def relay_stream(
    start: StreamStart,
    body: dict[str, Any],
    outcome: Outcome,
    receive: Receive,
    send: Send,
    request_id: str,
    t0: float,
) -> None:
    """Relay while watching `receive()` for the client's disconnect: uvicorn's `send()` returns silently once
    the client is gone, so without the watch the upstream would be read (and billed) to the end."""
    seen = Seen()
    watch = DisconnectWatch(receive, seen)
    try:
        await _relay(start, body, outcome, send, request_id, t0, seen)
    except asyncio.CancelledError:
        if not watch.stop():
            raise  # a cancellation from elsewhere (shutdown): not ours to swallow
        await _close(start.rest)  # hang up on the upstream: stop generating what nobody reads
        _interrupted(outcome, 499, "client_disconnected", body, seen)
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
        self.task = asyncio.get_running_loop().create_task(self._watch())

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
        self.task.cancel()
        if self.fired and self.relay is not None:
            self.relay.uncancel()
        return self.fired


async def _relay(
    start: StreamStart,
    body: dict[str, Any],
    outcome: Outcome,
    send: Send,
    request_id: str,
    t0: float,
    seen: Seen,
) -> None:
    include = bool((body.get("stream_options") or {}).get("include_usage"))
    headers = [*SSE_HEADERS, (b"x-request-id", request_id.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunk: StreamItem | None = start.first
    it = start.rest
    held = b""  # wire of items whose read has more to come at once: sent with what follows (one write)
    try:
        while chunk is not None:
            wire = _wire(chunk, include, outcome, seen)
            if wire is not None:
                if outcome.ttft is None:
                    outcome.ttft = time.perf_counter() - t0
                if isinstance(chunk, RawEvents) and chunk.more:
                    held += wire
                else:
                    await send({"type": "http.response.body", "body": held + wire, "more_body": True})
                    held = b""
            chunk = await anext(it, None)
    except UpstreamError as exc:
        seen.finishing = True
        await _end_with_error(send, exc, outcome, body, seen, held)
        return
    except OSError:
        # The client went away; stop reading the upstream and ledger what was consumed.
        await _close(it)
        _interrupted(outcome, 499, "client_disconnected", body, seen)
        return
    if outcome.usage is None:
        _interrupted(outcome, 200, None, body, seen)
    seen.finishing = True
    await send({"type": "http.response.body", "body": held + DONE, "more_body": False})


@dataclass
class Seen:
    """What the client was sent, kept cheaply: parsed deltas' text, and raw events parsed only if needed."""

    text: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    finishing: bool = False  # the last write has begun

    def completion_text(self) -> str:
        return "".join(self.text) + (streamed_text(self.raw) if self.raw else "")


def _wire(chunk: StreamItem, include: bool, outcome: Outcome, seen: Seen) -> bytes | None:
    if isinstance(chunk, RawEvents):
        seen.raw.extend(chunk.payloads)
        return chunk.wire
    out = _client_view(chunk, include, outcome, seen.text)
    return None if out is None else b"data: " + orjson.dumps(out) + b"\n\n"


def _client_view(
    chunk: dict[str, Any], include: bool, outcome: Outcome, text: list[str]
) -> dict[str, Any] | None:
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        outcome.usage = Usage.from_openai(usage)
        if usage.pop("estimated", False) and outcome.usage:
            outcome.usage.estimated = True
        if not include:
            if not chunk.get("choices"):
                return None
            del chunk["usage"]
        return chunk
    if not include and "usage" in chunk:
        del chunk["usage"]
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if content:
            text.append(content)
    return chunk


async def _end_with_error(
    send: Send, exc: UpstreamError, outcome: Outcome, body: dict[str, Any], seen: Seen, held: bytes = b""
) -> None:
    err = from_upstream(exc)
    _interrupted(outcome, err.status, "stream_interrupted", body, seen)
    payload = err.body()
    payload["error"]["code"] = "stream_interrupted"
    # No [DONE] after the error event: [DONE] means the stream finished, and this one did not.
    event = held + b"data: " + orjson.dumps(payload) + b"\n\n"
    try:
        await send({"type": "http.response.body", "body": event, "more_body": False})
    except OSError:
        return


def _interrupted(outcome: Outcome, status: int, error: str | None, body: dict[str, Any], seen: Seen) -> None:
    outcome.status = status
    outcome.error_type = error
    if outcome.usage is None:
        # No usage arrived: count what we can see and mark the row estimated rather than invent zeros.
        outcome.usage = Usage(
            prompt_tokens=estimate_tokens(messages_text(body.get("messages"))),
            completion_tokens=estimate_tokens(seen.completion_text()),
            estimated=True,
        )


async def _close(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except (UpstreamError, RuntimeError):
            return
