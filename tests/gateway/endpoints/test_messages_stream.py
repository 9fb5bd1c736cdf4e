"""The encoded stream (`ChatToEvents.wire`/`end_wire`, templates for the common events) gives byte for byte
what `sse()` of the dict events (`feed`/`end`) gives, on random chat streams: text with unicode, quotes,
backslashes and newlines, empty and role-only deltas, thinking, tool calls interleaved, several choices,
usage and finish chunks, parsed chunks and pass-through bytes."""

from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest

from ailab.gateway.endpoints.messages_stream import ChatToEvents, sse
from ailab.gateway.types import RawEvents, StreamItem, Usage

PIECES = [
    "Hello",
    " wörld",
    "🙂",
    '"quoted"',
    "back\\slash",
    "line\nbreak",
    "\t",
    "</s>",
    "日本語",
    "\u2028",
    "é",
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))


def _delta(rng: random.Random, calls: set[int]) -> dict[str, Any]:
    kind = rng.choices(["text", "empty", "role", "thinking", "tool", "none"], [8, 1, 1, 1, 2, 1])[0]
    if kind == "text":
        return {"content": _text(rng)}
    if kind == "empty":
        return {"content": ""}
    if kind == "role":
        return {"role": "assistant", "content": None}
    if kind == "thinking":
        return {"reasoning_content": _text(rng)}
    if kind == "tool":
        index = rng.randint(0, 2)
        call: dict[str, Any] = {"index": index, "function": {"arguments": '{"q": "' + _text(rng) + '"'}}
        if index not in calls:  # the first fragment of a call names it (with an id: no random ids)
            calls.add(index)
            call.update(id=f"call_{index}", type="function")
            call["function"]["name"] = f"tool_{index}"
        return {"tool_calls": [call]}
    return {}


def _chunk(rng: random.Random, calls: set[int]) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "up"}
    roll = rng.random()
    if roll < 0.05:
        chunk["choices"] = []
        chunk["usage"] = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        return chunk
    choices = [{"index": 0, "delta": _delta(rng, calls), "finish_reason": None}]
    if roll < 0.1:
        choices[0]["finish_reason"] = rng.choice(["stop", "length", "tool_calls"])
    elif roll < 0.13:
        choices.append({"index": 1, "delta": _delta(rng, calls), "finish_reason": None})
    chunk["choices"] = choices
    # Fields of other types than the decoded chunk's (left to the dict path), never on a tool call's chunk
    # (whose first fragment names the call: without it each side would make up a random id).
    if "tool_calls" not in choices[0]["delta"] and rng.random() < 0.15:
        odd = rng.choice([("index", None), ("index", "0"), ("delta", None), ("finish_reason", 0)])
        choices[0][odd[0]] = odd[1]
        if rng.random() < 0.3:
            choices[0]["delta"] = {"content": [{"type": "text", "text": _text(rng)}]}
    if rng.random() < 0.2:
        chunk["usage"] = None  # include_usage streams say so in every chunk
    return chunk


def _items(rng: random.Random) -> list[StreamItem]:
    calls: set[int] = set()
    chunks = [_chunk(rng, calls) for _ in range(rng.randint(0, 30))]
    items: list[StreamItem] = []
    while chunks:
        size = rng.randint(1, 4)
        batch, chunks = chunks[:size], chunks[size:]
        if rng.random() < 0.5:
            payloads = [orjson.dumps(c) for c in batch]
            items.append(RawEvents(b"".join(b"data: " + p + b"\n\n" for p in payloads), payloads))
        else:
            items.extend(batch)
    return items


def _copy(item: StreamItem) -> StreamItem:
    return item if isinstance(item, RawEvents) else orjson.loads(orjson.dumps(item))


@pytest.mark.parametrize("seed", range(300))
def test_wire_is_sse_of_the_events(seed: int) -> None:
    rng = random.Random(seed)
    items = _items(rng)
    slow, fast = ChatToEvents(model="claude-x"), ChatToEvents(model="claude-x")
    for item in items:
        assert fast.wire(_copy(item)) == b"".join(sse(e) for e in slow.feed(_copy(item)))
    if rng.random() < 0.5:
        slow.usage = fast.usage = Usage(prompt_tokens=10, completion_tokens=3)
    started = slow.started
    end_fast, end_slow = fast.end_wire(), b"".join(sse(e) for e in slow.end())
    if not started:  # no chunk came: each side made up a random message id
        end_fast, end_slow = (
            re.sub(rb'"id":"msg_[0-9a-f]+"', b'"id":"msg_"', e) for e in (end_fast, end_slow)
        )
    assert end_fast == end_slow
    assert fast.text == slow.text


def test_a_text_stream_reads_as_anthropic_events() -> None:
    events = ChatToEvents(model="claude-x")
    chunks: list[dict[str, Any]] = [
        {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": 'Hi "there"\n'}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "🙂"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    payloads = [orjson.dumps(c) for c in chunks]
    wire = events.wire(RawEvents(b"", payloads)) + events.end_wire()
    parsed = [orjson.loads(block.split(b"\ndata: ", 1)[1]) for block in wire.strip().split(b"\n\n")]
    assert [e["type"] for e in parsed] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert parsed[0]["message"]["id"] == "msg_c1"
    assert [e["delta"]["text"] for e in parsed[3:5]] == ['Hi "there"\n', "🙂"]
    assert parsed[6]["delta"]["stop_reason"] == "end_turn"
