"""A fake Anthropic Messages API (POST /v1/messages, incl. SSE streaming, tools, thinking and prompt caching;
POST /v1/messages/count_tokens).

It validates requests the way the real API does (required max_tokens, user/assistant roles only, no
unknown top-level fields, non-empty text blocks, tool_use/tool_result pairing) so mapping bugs give 400s.

Deterministic: the reply is `echo: <last user text>`; with tools (and tool_choice not none) it calls the
first (or the forced) tool with {"city": "Paris"}, preceded by a short text block under tool_choice auto, as
Claude does; after a tool result it says `tool said: <result>`. Token counts are word counts (+3 per message);
the prefix up to the last `cache_control` block is written to the cache on first sight and read afterwards.

Test knobs (request headers, set through Deployment.headers): `x-fake-double-delta: 1` sends two message_delta
events with cumulative usage; `x-fake-stream-error: <error type>` (and `x-fake-stream-error-message`) sends an
`error` event after the first content delta.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstreams.harness import Fault, StreamCut, Upstream, apply_fault

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ALLOWED_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
}
BLOCK_TYPES = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
MSG_ID = "msg_01FakeAnthropic"


class Invalid(Exception):
    pass


def anthropic_error(status: int, message: str = "upstream failure") -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def blocks_of(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text") or "")
    if block.get("type") == "tool_result":
        return " ".join(block_text(b) for b in blocks_of(block.get("content")))
    return ""


def words(text: str) -> int:
    return len(text.split())


# -- validation ---------------------------------------------------------------------------------------


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("body: Input should be an object")
    for key in body:
        if key not in ALLOWED_FIELDS:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise Invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int):
        raise Invalid("max_tokens: Field required")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for b in system:
            if b.get("type") != "text" or not b.get("text"):
                raise Invalid("system: text content blocks must be non-empty text blocks")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    for i, m in enumerate(messages):
        _validate_message(i, m, messages[i - 1] if i else None)
    if messages[-1]["role"] == "assistant" and any(
        b.get("type") == "tool_use" for b in blocks_of(messages[-1]["content"])
    ):
        raise Invalid("tool_use ids were found without tool_result blocks immediately after")
    _validate_tools(body)


def _validate_message(i: int, m: dict[str, Any], prev: dict[str, Any] | None) -> None:
    role = m.get("role")
    if role not in BLOCK_TYPES:
        raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    blocks = blocks_of(m.get("content"))
    if not blocks:
        raise Invalid(f"messages.{i}: all messages must have non-empty content")
    for j, b in enumerate(blocks):
        kind = b.get("type")
        if kind not in BLOCK_TYPES[role]:
            raise Invalid(f"messages.{i}.content.{j}.type: {kind!r} is not allowed in a {role} message")
        if kind == "text" and not b.get("text"):
            raise Invalid(f"messages.{i}.content.{j}: text content blocks must be non-empty")
        if kind == "image":
            _validate_image(i, j, b.get("source") or {})
        if kind == "tool_result" and any(x.get("type") != "tool_result" for x in blocks[:j]):
            raise Invalid(f"messages.{i}: tool_result blocks must come first in the content")
    prev_ids = (
        {b.get("id") for b in blocks_of(prev["content"]) if b.get("type") == "tool_use"} if prev else set()
    )
    result_ids = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
    if result_ids - prev_ids:
        raise Invalid(
            f"messages.{i}: unexpected tool_use_id found in tool_result blocks: {result_ids - prev_ids}"
        )
    if prev_ids and prev_ids - result_ids:
        raise Invalid(
            f"messages.{i}: tool_use ids were found without tool_result blocks: {prev_ids - result_ids}"
        )


def _validate_image(i: int, j: int, source: dict[str, Any]) -> None:
    if source.get("type") == "base64":
        if source.get("media_type") not in IMAGE_TYPES or not source.get("data"):
            raise Invalid(f"messages.{i}.content.{j}.source: invalid base64 image source")
    elif source.get("type") != "url" or not str(source.get("url", "")).startswith("http"):
        raise Invalid(f"messages.{i}.content.{j}.source: invalid image source")


def _validate_tools(body: dict[str, Any]) -> None:
    for t in body.get("tools") or ():
        if not t.get("name") or not isinstance(t.get("input_schema"), dict):
            raise Invalid("tools: each tool needs name and input_schema")
    choice = body.get("tool_choice")
    if choice is not None:
        if not body.get("tools"):
            raise Invalid("tool_choice may only be specified while providing tools")
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool" and not choice.get("name"):
            raise Invalid("tool_choice.name: Field required")


# -- reply and usage ----------------------------------------------------------------------------------


def reply_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    blocks = blocks_of(last["content"])
    out: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        out.append({"type": "thinking", "thinking": "Thinking about the question.", "signature": "sig_fake"})
    results = [b for b in blocks if b.get("type") == "tool_result"]
    choice = body.get("tool_choice") or {"type": "auto"}
    if body.get("tools") and last["role"] == "user" and not results and choice["type"] != "none":
        name = choice["name"] if choice["type"] == "tool" else body["tools"][0]["name"]
        if choice["type"] == "auto":
            out.append({"type": "text", "text": "Let me check."})
        out.append({"type": "tool_use", "id": "toolu_01Fake", "name": name, "input": {"city": "Paris"}})
        return out
    if results:
        text = "tool said: " + " ".join(block_text(b) for b in results)
    else:
        text = "echo: " + " ".join(block_text(b) for b in blocks if b.get("type") == "text")
    out.append({"type": "text", "text": text.strip()})
    return out


def apply_limits(body: dict[str, Any], blocks: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Cut the text block at a stop sequence or at max_tokens words; return (stop_reason, stop_sequence)."""
    if any(b["type"] == "tool_use" for b in blocks):
        return "tool_use", None
    block = blocks[-1]
    for seq in body.get("stop_sequences") or ():
        if seq in block["text"]:
            block["text"] = block["text"].split(seq)[0]
            return "stop_sequence", seq
    parts = block["text"].split(" ")
    if len(parts) > body["max_tokens"]:
        block["text"] = " ".join(parts[: body["max_tokens"]])
        return "max_tokens", None
    return "end_turn", None


def prompt_usage(body: dict[str, Any], cache: set[str]) -> dict[str, int]:
    """Word counts per block in prompt order (tools, system, messages); the cached prefix ends at the last
    cache_control block. Writes are split by lifetime as Anthropic reports them (`cache_creation`): the
    prefix up to the last `"ttl": "1h"` breakpoint is written for an hour, the rest for five minutes."""
    items: list[tuple[int, Any, str]] = []
    for t in body.get("tools") or ():
        items.append((words(f"{t['name']} {t.get('description', '')}"), t.get("cache_control"), t["name"]))
    system = body.get("system")
    for b in blocks_of(system) if system else ():
        items.append((words(b["text"]), b.get("cache_control"), b["text"]))
    for m in body["messages"]:
        items.append((3, None, m["role"]))
        for b in blocks_of(m["content"]):
            items.append(
                (
                    words(block_text(b)) + (50 if b.get("type") == "image" else 0),
                    b.get("cache_control"),
                    json.dumps(b, sort_keys=True),
                )
            )
    total = sum(n for n, _, _ in items)
    marks = [i for i, (_, cc, _) in enumerate(items) if cc]
    hours = [i for i in marks if (items[i][1] or {}).get("ttl") == "1h"]
    usage: dict[str, Any] = {
        "input_tokens": total,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    creation = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    if marks:
        prefix = items[: marks[-1] + 1]
        tokens = sum(n for n, _, _ in prefix)
        key = hashlib.sha256("\x00".join(k for _, _, k in prefix).encode()).hexdigest()
        if key in cache:
            usage["cache_read_input_tokens"] = tokens
        else:
            usage["cache_creation_input_tokens"] = tokens
            hour = sum(n for n, _, _ in items[: hours[-1] + 1]) if hours else 0
            creation = {"ephemeral_5m_input_tokens": tokens - hour, "ephemeral_1h_input_tokens": hour}
        usage["input_tokens"] = total - tokens
        cache.add(key)
    usage["cache_creation"] = creation
    return usage


def output_tokens(blocks: list[dict[str, Any]]) -> int:
    n = 0
    for b in blocks:
        n += words(b.get("text") or b.get("thinking") or "") + (5 if b["type"] == "tool_use" else 0)
    return n


# -- app ----------------------------------------------------------------------------------------------


def make_app(up: Upstream) -> Starlette:
    cache: set[str] = set()

    async def messages(request: Request) -> Response:
        entry = await up.record(request)
        if up.api_key and request.headers.get("x-api-key") != up.api_key:
            return JSONResponse(anthropic_error(401, "invalid x-api-key"), status_code=401)
        if not request.headers.get("anthropic-version"):
            return JSONResponse(
                anthropic_error(400, "anthropic-version: header is required"), status_code=400
            )
        fault = up.next_fault()
        if (resp := await apply_fault(fault, anthropic_error)) is not None:
            return resp
        body = entry["body"]
        try:
            validate(body)
        except Invalid as exc:
            return JSONResponse(anthropic_error(400, str(exc)), status_code=400)
        blocks = reply_blocks(body)
        stop_reason, stop_sequence = apply_limits(body, blocks)
        usage = {**prompt_usage(body, cache), "output_tokens": output_tokens(blocks)}
        message = {
            "id": MSG_ID,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }
        if body.get("stream"):
            events = stream_events(message, request.headers)
            return StreamingResponse(_sse(up, events, fault), media_type="text/event-stream")
        return JSONResponse(message)

    async def count_tokens(request: Request) -> Response:
        entry = await up.record(request)
        if up.api_key and request.headers.get("x-api-key") != up.api_key:
            return JSONResponse(anthropic_error(401, "invalid x-api-key"), status_code=401)
        body = entry["body"]
        try:
            if not isinstance(body, dict) or "max_tokens" in body or "stream" in body:
                raise Invalid("max_tokens, stream: Extra inputs are not permitted")
            validate({**body, "max_tokens": 1})
        except Invalid as exc:
            return JSONResponse(anthropic_error(400, str(exc)), status_code=400)
        usage = prompt_usage(body, set())  # a count reads and writes no cache
        total = (
            usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
        )
        return JSONResponse({"input_tokens": total})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        ]
    )


async def _sse(up: Upstream, events: list[dict[str, Any]], fault: Fault | None) -> AsyncIterator[bytes]:
    cut, delay = (fault.cut_after, fault.event_delay) if fault else (None, 0.0)
    finished = False
    try:
        for sent, event in enumerate(events):
            if cut is not None and sent >= cut:
                raise StreamCut()
            if sent and delay:
                await asyncio.sleep(delay)
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
        finished = True
    finally:
        if not finished:  # cut, cancelled or closed: the gateway hung up before the end
            with up.lock:
                up.streams_closed_early += 1


def stream_events(message: dict[str, Any], headers: Any) -> list[dict[str, Any]]:
    """The documented sequence: message_start, then per block content_block_start / deltas / stop (a ping
    after the first start), message_delta with cumulative usage, message_stop."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        events.append({"type": "content_block_start", "index": index, "content_block": _empty(block)})
        if index == 0:
            events.append({"type": "ping"})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in _deltas(block))
        events.append({"type": "content_block_stop", "index": index})
    if error_type := headers.get("x-fake-stream-error"):
        first = next(i for i, e in enumerate(events) if e["type"] == "content_block_delta")
        msg = headers.get("x-fake-stream-error-message", "Overloaded")
        return [*events[: first + 1], {"type": "error", "error": {"type": error_type, "message": msg}}]
    final = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    if headers.get("x-fake-double-delta"):
        half = {"stop_reason": None, "stop_sequence": None}
        events.append({"type": "message_delta", "delta": half, "usage": {"output_tokens": 2}})
    events.append(
        {"type": "message_delta", "delta": final, "usage": {"output_tokens": usage["output_tokens"]}}
    )
    events.append({"type": "message_stop"})
    return events


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "text", "text": ""}


def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    if block["type"] == "tool_use":
        raw = json.dumps(block["input"])
        cut = len(raw) // 2
        return [{"type": "input_json_delta", "partial_json": p} for p in ("", raw[:cut], raw[cut:])]
    if block["type"] == "thinking":
        return [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ]
    parts = block["text"].split(" ")
    return [{"type": "text_delta", "text": (" " if i else "") + p} for i, p in enumerate(parts)]
