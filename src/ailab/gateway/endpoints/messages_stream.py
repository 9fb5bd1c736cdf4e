"""Anthropic's streaming events, from either side of the gateway.

- `ChatToEvents`: OpenAI chat chunks (any translated provider) in, Anthropic events out, in Anthropic's
  documented order: message_start, then per block content_block_start (a ping after the first),
  content_block_delta (text_delta, input_json_delta, thinking_delta) and content_block_stop, then
  message_delta (stop_reason and the usage) and message_stop.
- `NativeEvents`: an Anthropic deployment's own events, forwarded as they came while their usage (cache
  reads and writes included) is read with the Anthropic adapter's own stream state.
Both keep the usage for the ledger; an error becomes Anthropic's `error` event.

`ChatToEvents.feed`/`end` give the events as dicts; `wire`/`end_wire` give the same events encoded, the
stream's hot path: a chunk that is nothing but text (most of a stream) and the stream's opening and closing
events come from pre-encoded templates with the variable parts (orjson-encoded) spliced in, byte for byte what
`sse()` of the dicts gives, without building the dicts; other chunks (tool calls, thinking) go through `feed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ailab.gateway.chunks import Chunk, decode_chunk
from ailab.gateway.endpoints.messages_convert import anthropic_usage, message_id, new_id, stop_reason
from ailab.gateway.providers.anthropic import _StreamState
from ailab.gateway.providers.anthropic_convert import usage_from
from ailab.gateway.providers.base import loads_event
from ailab.gateway.types import RawEvents, StreamItem, Usage


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# `sse()` of the stream's common events, split where the variable parts go (`%d`: a block index).
MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":',
    b',"type":"message","role":"assistant","model":',
    b',"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}\n\n',
)
TEXT_BLOCK_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
TEXT_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    b'"delta":{"type":"text_delta","text":',
    b"}}\n\n",
)
BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_DELTA = (
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":',
    b',"stop_sequence":null},"usage":',
    b"}\n\n",
)
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def error_event(kind: str, message: str) -> bytes:
    return sse({"type": "error", "error": {"type": kind, "message": message}})


@dataclass(slots=True)
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
    head: bytes = b""  # the open text block's text_delta event up to its text (b"": no text block open)

    def feed(self, item: StreamItem) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for chunk in _chunks(item):
            events.extend(self._chunk(chunk))
        return events

    def wire(self, item: StreamItem) -> bytes:
        """`sse()` of the events `feed(item)` gives. Raw payloads are decoded into the fields the text path
        reads (`gateway/chunks.py`); one that is more than text is parsed as a dict like any chunk."""
        if not isinstance(item, RawEvents):
            return self._wire_chunk(item)
        out = b""
        for payload in item.payloads:
            chunk = decode_chunk(payload)
            if chunk is not None and (text := _plain_text(chunk)) is not None:
                out += self._text_wire(chunk.id, text)
            else:
                out += self._wire_chunk(loads_event(payload, "upstream"))
        return out

    def _wire_chunk(self, chunk: dict[str, Any]) -> bytes:
        text = _only_text(chunk)
        if text is None:  # tool calls, thinking, the finish, usage: the events' dicts
            return b"".join(sse(e) for e in self._chunk(chunk))
        return self._text_wire(chunk.get("id"), text)

    def _text_wire(self, chunk_id: Any, text: str) -> bytes:
        out = b"" if self.started else self._start_wire(chunk_id)
        if not text:  # e.g. the first chunk's role-only delta
            return out
        if self.open != "text":
            closed, ping = self._next_block("text")
            if closed is not None:
                out += BLOCK_STOP % closed
            out += TEXT_BLOCK_START % self.index
            if ping:
                out += PING
        self.text.append(text)
        return out + self.head + orjson.dumps(text) + TEXT_DELTA[1]

    def end_wire(self) -> bytes:
        """`sse()` of the events `end()` gives."""
        out = b"" if self.started else self._start_wire(None)
        if not self.pinged:
            out += PING
        if self.open is not None:
            out += BLOCK_STOP % self.index
            self._shut()
        usage = orjson.dumps(anthropic_usage(self.usage or Usage()))
        reason = orjson.dumps(stop_reason(self.finish, bool(self.tools)))
        out += MESSAGE_DELTA[0] + reason + MESSAGE_DELTA[1] + usage + MESSAGE_DELTA[2]
        return out + MESSAGE_STOP

    def _start_wire(self, chunk_id: Any) -> bytes:
        self._begin(chunk_id)
        start = MESSAGE_START
        return start[0] + orjson.dumps(self.id) + start[1] + orjson.dumps(self.model) + start[2]

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

    def _begin(self, chunk_id: Any) -> None:
        self.started = True
        self.id = message_id(chunk_id)

    def _start(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self._begin(chunk.get("id"))
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
        closed, ping = self._next_block(kind)
        events = [] if closed is None else [{"type": "content_block_stop", "index": closed}]
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        if ping:
            events.append({"type": "ping"})
        return events

    def _next_block(self, kind: str) -> tuple[int | None, bool]:
        """Close the open block (if any) and open one of `kind`: the closed block's index, and whether the
        stream's one ping goes now (after the first block's start)."""
        closed = None if self.open is None else self.index
        self.index += 1
        self.open = kind
        self.head = TEXT_DELTA[0] % self.index if kind == "text" else b""
        ping, self.pinged = not self.pinged, True
        return closed, ping

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self._shut()
        return [{"type": "content_block_stop", "index": self.index}]

    def _shut(self) -> None:
        self.open = None
        self.head = b""

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


def _chunks(item: StreamItem) -> list[dict[str, Any]]:
    if isinstance(item, RawEvents):  # OpenAI-compatible pass-through bytes: parse them here
        return [loads_event(p, "upstream") for p in item.payloads]
    return [item]


def _only_text(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that carries nothing else `_chunk` acts on (one choice whose delta has text, maybe
    empty, and no reasoning or tool calls, no finish_reason, no usage), else None."""
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1 or isinstance(chunk.get("usage"), dict):
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    content = delta.get("content")
    if content is None:
        content = ""
    elif type(content) is not str:
        return None
    if delta.get("tool_calls") or delta.get("reasoning_content") or delta.get("reasoning"):
        return None
    return content


def _plain_text(chunk: Chunk) -> str | None:
    """`_only_text` of a decoded chunk."""
    choices = chunk.choices
    if choices is None or len(choices) != 1 or isinstance(chunk.usage, dict):
        return None
    choice = choices[0]
    delta = choice.delta
    if choice.finish_reason or delta is None:
        return None
    if delta.tool_calls or delta.reasoning_content or delta.reasoning:
        return None
    return delta.content or ""


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
