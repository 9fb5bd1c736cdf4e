"""The pre-encoded fast path (`ChatToEvents.start_wire` / `feed_wire` / `feed_payloads` / `finish_wire`) sends exactly
the bytes of the dict-built events (`start` / `feed` / `finish` through `sse`), for random streams: unicode,
quotes, newlines, backslashes, tool calls interleaved with text, odd chunks the fast path must leave to
`feed`."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

import orjson
import pytest

from ailab.gateway.responses import from_chat
from ailab.gateway.responses.events import ChatToEvents, sse, text_only
from ailab.gateway.responses.from_chat import skeleton
from ailab.gateway.types import Usage
from tests.gateway.responses.test_convert import TOOL, check_event

ALPHABET = [
    '"',
    "\\",
    "\n",
    "\r",
    "\t",
    "\u2028",
    "é",
    "日本",
    "🙂",
    "\x00",
    "\x1f",
    "</script>",
    "a",
    " ",
    "{}",
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))


def _choice(delta: dict[str, Any], index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}


ODD = [
    lambda text: {"choices": [{"index": None, "delta": {"content": text}}]},
    lambda text: {"choices": [{"index": 0.0, "delta": {"content": text}}]},
    lambda text: {"choices": [{"index": True, "delta": {"content": text}}]},
    lambda text: {"choices": [{"delta": None, "finish_reason": None}]},
    lambda text: {"choices": [{"delta": {"content": [text]}}]},
    lambda text: {"choices": [{"delta": {"content": text, "refusal": None, "reasoning_content": "r"}}]},
    lambda text: {"choices": [{"delta": {"content": text}, "finish_reason": 7}]},
    lambda text: {"choices": [{"delta": {"content": text, "tool_calls": []}}]},
    lambda text: {"choices": None},
    lambda text: {"choices": [text]},
    lambda text: {"object": "chat.completion.chunk"},
]


def _chunk(rng: random.Random, n_calls: list[int]) -> dict[str, Any]:
    kind = rng.choice(
        ["text"] * 6 + ["role", "empty", "call", "args", "mixed", "other-choice", "none", "two", "odd"]
    )
    if kind == "text":
        return {"id": "c", "choices": [_choice({"content": _text(rng)})]}
    if kind == "role":
        return {"choices": [_choice({"role": "assistant", "content": ""})]}
    if kind == "empty":
        return {"choices": []}
    if kind == "none":
        return {"choices": [_choice({"content": None})], "usage": None}
    if kind in ("call", "args") and (kind == "call" or not n_calls):
        n_calls.append(len(n_calls))
        fn = {"name": "get_weather", "arguments": rng.choice(["", '{"a":'])}
        return {
            "choices": [
                _choice(
                    {"tool_calls": [{"index": n_calls[-1], "id": f"call_{len(n_calls)}", "function": fn}]}
                )
            ]
        }
    if kind == "args":
        call = {"index": rng.choice(n_calls), "function": {"arguments": _text(rng)}}
        return {"choices": [_choice({"tool_calls": [call]})]}
    if kind == "mixed":  # text and a call's arguments in one chunk
        call = {"index": 0, "id": "call_m", "function": {"name": "get_weather", "arguments": '"x"'}}
        if not n_calls:
            n_calls.append(0)
        return {"choices": [_choice({"content": _text(rng), "tool_calls": [call]})]}
    if (
        kind == "odd"
    ):  # fields of other types than the decoded chunk's (`feed_payloads` leaves them to `feed`)
        return rng.choice(ODD)(_text(rng))
    if kind == "other-choice":  # a second answer: ignored either way
        return {"choices": [_choice({"content": _text(rng)}, index=1)]}
    return {"choices": [_choice({"content": _text(rng)}), _choice({"content": _text(rng)}, index=1)]}


def _stream(rng: random.Random) -> list[dict[str, Any]]:
    n_calls: list[int] = []
    chunks = [_chunk(rng, n_calls) for _ in range(rng.randint(0, 25))]
    finish = rng.choice(["stop", "length", "tool_calls", None])
    if finish is not None:
        chunks.append({"choices": [_choice({}, finish=finish)]})
    return chunks


def _events(wire: bytes) -> list[dict[str, Any]]:
    out = []
    for block in wire.split(b"\n\n")[:-1]:
        head, data = block.split(b"\n", 1)
        event = orjson.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode()
        out.append(event)
    return out


def _feed(t: ChatToEvents, chunks: list[dict[str, Any]], way: str, rng: random.Random) -> bytes:
    if way == "dicts":
        return b"".join(sse(e) for chunk in chunks for e in t.feed(chunk))
    if way == "feed_wire":
        return b"".join(t.feed_wire(chunk) for chunk in chunks)
    wire, at = b"", 0  # in runs of random length (a network read's worth each)
    while at < len(chunks):
        n = rng.randint(1, 5)
        if way == "feed_payloads":  # the raw payloads of an OpenAI-compatible upstream
            wire += t.feed_payloads([orjson.dumps(c) for c in chunks[at : at + n]])
        else:
            wire += t.feed_chunks(chunks[at : at + n])
        at += n
    return wire


@pytest.mark.parametrize("seed", range(60))
def test_fast_path_sends_the_same_bytes(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    chunks = _stream(rng)
    if seed % 3 == 0:  # the usage chunk that ends a stream
        chunks.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}})
    body = {"model": "m", "tools": [TOOL]} if seed % 2 else {"model": "m", "user": "u"}
    base = skeleton(body, f"resp_{seed}", "m", created=1700000000)
    monkeypatch.setattr(from_chat.time, "time", lambda: 1700000001.0)
    wires = []
    for way in ("dicts", "feed_wire", "feed_chunks", "feed_payloads"):
        ids = itertools.count()  # the same item ids for every run
        monkeypatch.setattr(from_chat, "new_id", lambda prefix, ids=ids: f"{prefix}_{next(ids)}")
        t = ChatToEvents(copy.deepcopy(base))
        fast = way != "dicts"
        wire = t.start_wire() if fast else b"".join(sse(e) for e in t.start())
        wire += _feed(t, copy.deepcopy(chunks), way, rng)
        usage = Usage(prompt_tokens=3, completion_tokens=7)
        if fast:
            closing, response = t.finish_wire(usage)
            wire += closing
        else:
            wire += b"".join(sse(e) for e in t.finish(usage))
        wires.append(wire)
    assert wires[0] == wires[1] == wires[2] == wires[3]
    assert response == orjson.dumps(t.response)  # what the store is handed: the final response itself
    events = _events(wires[1])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for e in events:
        check_event(e)


def test_text_only_takes_nothing_but_plain_text_deltas() -> None:
    assert text_only({"choices": [_choice({"content": "hi"})]}) == "hi"
    assert text_only({"choices": [{"delta": {"content": "hi"}}]}) == "hi"  # index 0 by default
    for chunk in (
        {"choices": [_choice({"content": ""})]},
        {"choices": [_choice({"content": None})]},
        {"choices": [_choice({"content": 5})]},
        {"choices": [_choice({"content": "hi"}, finish="stop")]},
        {"choices": [_choice({"content": "hi"}, index=1)]},
        {"choices": [_choice({"content": "hi", "tool_calls": [{"index": 0}]})]},
        {"choices": [_choice({"content": "a"}), _choice({"content": "b"}, index=1)]},
        {"choices": []},
        {},
    ):
        assert text_only(chunk) is None, chunk
