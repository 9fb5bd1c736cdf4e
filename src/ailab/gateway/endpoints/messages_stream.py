"""Anthropic's streaming events, from either side of the gateway.

- `ChatToEvents`: OpenAI chat chunks (any translated provider) in, Anthropic events out, in Anthropic's
  documented order: message_start, then per block content_block_start (a ping after the first),
  content_block_delta (text_delta, input_json_delta, thinking_delta) and content_block_stop, then
  message_delta (stop_reason and the usage) and message_stop.
- `NativeEvents`: an Anthropic deployment's own events, forwarded as they came while their usage (cache
  reads and writes included) is read with the Anthropic adapter's own stream state.
Both keep the usage for the ledger; an error becomes Anthropic's `error` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ailab.gateway.endpoints.messages_convert import anthropic_usage, message_id, new_id, stop_reason
from ailab.gateway.providers.anthropic import _StreamState
from ailab.gateway.providers.anthropic_convert import usage_from
from ailab.gateway.providers.base import loads_event
from ailab.gateway.types import RawEvents, StreamItem, Usage


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_event(kind: str, message: str) -> bytes:
    return sse({"type": "error", "error": {"type": kind, "message": message}})


@dataclass
class ChatToEvents:
    """One translated stream's state: which block is open, which tool call is which block."""

    model: str
    id: str = ""
    index: int = -1  # the open block's index (-1: none yet)
    open: str | None = None  # the open block's type
    tools: dict[int, int] = field(default_factory=dict)  # chat tool_call index -> block index
    started: bool = False
    pinged: bool = False
    finish: str | None = None
    usage: Usage | None = None
    text: list[str] = field(default_factory=list)  # what was sent, for an estimate if no usage came

    def feed(self, item: StreamItem) -> list[dict[str, Any]]:
        if isinstance(item, RawEvents):  # OpenAI-compatible pass-through bytes: parse them here
            chunks = [loads_event(p, "upstream") for p in item.payloads]
        else:
            chunks = [item]
        events: list[dict[str, Any]] = []
        for chunk in chunks:
            events.extend(self._chunk(chunk))
        return events

    def _chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = [] if self.started else [self._start(chunk)]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
            if usage.get("estimated") and self.usage is not None:
                self.usage.estimated = True
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            events.extend(self._delta(choice.get("delta") or {}))
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        return events

    def _start(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        self.id = message_id(chunk.get("id"))
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Chat streams report usage at the end only: the real counts come in message_delta.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return {"type": "message_start", "message": message}

    def _delta(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events += self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            events += self._ensure("text", {"type": "text", "text": ""})
            events.append(self._block_delta({"type": "text_delta", "text": content}))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                events += self._tool_call(call)
        return events

    def _tool_call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        position = int(call.get("index") or 0)
        fn = call.get("function") or {}
        if position not in self.tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu_"),
                "name": fn.get("name") or "",
                "input": {},
            }
            events += self._open("tool_use", block)
            self.tools[position] = self.index
        fragment = fn.get("arguments")
        if isinstance(fragment, str) and fragment:
            self.text.append(fragment)
            index = self.tools[position]
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        return events

    def _ensure(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        return [] if self.open == kind else self._open(kind, block)

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.index += 1
        self.open = kind
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        if not self.pinged:
            self.pinged = True
            events.append({"type": "ping"})
        return events

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _block_delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def end(self) -> list[dict[str, Any]]:
        """The closing events, once the upstream stream is over (usage: `self.usage`, or an estimate set
        by the caller before)."""
        events = [] if self.started else [self._start({})]
        if not self.pinged:
            events.append({"type": "ping"})
        events += self._close()
        usage = anthropic_usage(self.usage or Usage())
        delta = {"stop_reason": stop_reason(self.finish, bool(self.tools)), "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": usage})
        events.append({"type": "message_stop"})
        return events


@dataclass
class NativeEvents:
    """An Anthropic upstream's event stream: payloads forwarded as sent, watched for usage and the end."""

    state: _StreamState = field(default_factory=_StreamState)
    stopped: bool = False
    errored: bool = False  # the upstream's own `error` event was forwarded

    def wire(self, data: bytes) -> tuple[dict[str, Any], bytes]:
        event = loads_event(data, "anthropic")
        self.state.handle(event)  # the adapter's own reading: cumulative usage, text for estimates
        if event.get("type") == "message_stop":
            self.stopped = True
        elif event.get("type") == "error":
            self.errored = True
        return event, b"event: " + str(event.get("type") or "").encode() + b"\ndata: " + data + b"\n\n"

    @property
    def usage(self) -> Usage | None:
        return usage_from(dict(self.state.usage)) if self.state.usage else None

    @property
    def text(self) -> str:
        return "".join(self.state.text)
