"""How a `/v1/responses` stream looks on the wire (the cycle's `StreamShape` for this endpoint).

Translated: chat chunks become Responses events (`events.ChatToEvents`). Native: the upstream's events
pass through, re-encoded as `event:`/`data:` SSE, with the lab's `store` and `previous_response_id`
written into their response snapshots. Either way the final event (`response.completed` …) is held back
until the end, so the stored response is written before the client can see it finished and follow up.
"""

from __future__ import annotations

from typing import Any

from ailab.gateway.cycle import RequestContext
from ailab.gateway.errors import GatewayError
from ailab.gateway.providers.base import loads_event
from ailab.gateway.responses.events import ChatToEvents, sse
from ailab.gateway.responses.from_chat import from_responses_usage, skeleton
from ailab.gateway.responses.native import FINAL
from ailab.gateway.responses.state import ResponsesState
from ailab.gateway.streaming import Seen, StreamShape
from ailab.gateway.types import RawEvents, Usage

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ResponsesShape(StreamShape):
    headers = SSE_HEADERS

    def __init__(self, ctx: RequestContext) -> None:
        super().__init__(ctx)
        self.state: ResponsesState = ctx.scratch["responses"]
        body = self.state.body
        self.events = ChatToEvents(skeleton(body, self.state.response_id, body["model"]))
        self.usage: Usage | None = None
        self.tail = b""  # the native stream's final event, held back
        self.seq = 0  # native: the next sequence number (for an error event of our own)

    def first(self) -> bytes:
        if self.state.native:
            return b""
        return self.events.start_wire()

    def chunk(self, chunk: dict[str, Any], seen: Seen) -> bytes | None:
        if self.state.native:
            return self._native(chunk, seen)
        if isinstance(chunk.get("usage"), dict):  # `last` reports it, in the final response
            self.usage = self.ctx.outcome.usage
        choices = chunk.get("choices")
        if not choices:  # the usage chunk: no event of its own
            return None
        for choice in choices:
            content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
            if content:
                seen.text.append(content)
        return self.events.feed_chunks([chunk]) or None

    def raw(self, item: RawEvents) -> bytes:
        # An OpenAI-compatible chat upstream's chunks, forwarded raw on /chat/completions: parsed here.
        # The relay keeps the payloads themselves for an estimate, so no `seen` text is recorded.
        if self.state.native:
            return b"".join(self._native(loads_event(d, "upstream"), Seen()) or b"" for d in item.payloads)
        # Usage never comes raw (the provider parses the chunks that carry it): `last` takes the outcome's.
        return self.events.feed_payloads(item.payloads)

    def last(self) -> bytes:
        if self.state.native:
            return self.tail
        usage = self.usage or self.ctx.outcome.usage or Usage()
        wire, self.state.final_json = self.events.finish_wire(usage)
        self.state.final = self.events.response
        return wire

    def error(self, err: GatewayError) -> bytes:
        seq = self.seq if self.state.native else self.events.seq
        event = {
            "type": "error",
            "code": err.code,
            "message": err.message,
            "param": err.param,
            "sequence_number": seq,
        }
        if self.state.native:
            return sse(event)
        self.events.seq += 1
        return sse(event) + b"".join(sse(e) for e in self.events.fail("server_error", err.message))

    def _native(self, event: dict[str, Any], seen: Seen) -> bytes | None:
        kind = str(event.get("type") or "")
        self.seq = int(event.get("sequence_number") or self.seq) + 1
        response = event.get("response")
        if isinstance(response, dict):
            self.state.fix_native(response)
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            seen.text.append(event["delta"])
        if kind in FINAL and isinstance(response, dict):
            self.ctx.outcome.usage = from_responses_usage(response.get("usage")) or self.estimate(seen)
            self.state.final = response
            self.tail = sse(event)
            return None
        return sse(event)
