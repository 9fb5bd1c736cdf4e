"""OpenAI's Responses API as the fake OpenAI upstream serves it (`POST /v1/responses`), deterministic:

The reply is `echo: <last input text>`; after a `function_call_output` last it is `tool said: <output>`;
with function tools and a user message last it calls the first tool with `{"city": "Paris"}`. A
`text.format` json_schema whose schema has an `echo` property gets `{"echo": "<reply>"}`. Input tokens are
the words of the instructions and every input item's text plus 3 per item; output tokens the reply's words
(+5 for a call). Streams send the documented events with `sequence_number`, and no `[DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from tests.upstreams.harness import Fault, StreamCut


def _text(item: dict[str, Any]) -> str:
    if item.get("type") == "function_call_output":
        out = item.get("output")
        return out if isinstance(out, str) else " ".join(p.get("text", "") for p in out or ())
    content = item.get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [{"type": "message", **i} if "type" not in i else i for i in raw or ()]


def reply(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    items = _items(body)
    last = items[-1] if items else {}
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    if tools and last.get("role") == "user" and body.get("tool_choice") != "none":
        return None, {"call_id": "call_1", "name": tools[0]["name"], "arguments": '{"city": "Paris"}'}
    prefix = "tool said:" if last.get("type") == "function_call_output" else "echo:"
    text = f"{prefix} {_text(last)}".strip()
    fmt = (body.get("text") or {}).get("format") or {}
    if "echo" in ((fmt.get("schema") or {}).get("properties") or {}):
        text = json.dumps({"echo": text})
    return text, None


def usage(body: dict[str, Any], text: str | None, call: dict[str, Any] | None) -> dict[str, Any]:
    items = _items(body)
    prompt = len(str(body.get("instructions") or "").split()) + sum(len(_text(i).split()) + 3 for i in items)
    completion = len((text or "").split()) + (5 if call else 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _output(text: str | None, call: dict[str, Any] | None) -> list[dict[str, Any]]:
    if call is not None:
        return [{"type": "function_call", "id": "fc_fake1", "status": "completed", **call}]
    part = {"type": "output_text", "text": text or "", "annotations": [], "logprobs": []}
    return [
        {"type": "message", "id": "msg_fake1", "status": "completed", "role": "assistant", "content": [part]}
    ]


def _response(body: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "id": f"resp_up{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
    }


def respond(body: dict[str, Any]) -> dict[str, Any]:
    text, call = reply(body)
    out = _response(body, "completed")
    out["output"] = _output(text, call)
    out["usage"] = usage(body, text, call)
    out["completed_at"] = int(time.time())
    return out


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    text, call = reply(body)
    resp = _response(body, "in_progress")
    item = _output(text, call)[0]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": resp},
        {"type": "response.in_progress", "response": resp},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress"}},
    ]
    if call is not None:
        events.append(
            {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}}
        )
        events.pop(-2)
        events.append(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item["id"],
                "output_index": 0,
                "delta": call["arguments"],
            }
        )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": 0,
                "name": call["name"],
                "arguments": call["arguments"],
            }
        )
    else:
        ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        events[-1]["item"]["content"] = []
        events.append({"type": "response.content_part.added", **ids, "part": empty})
        for i, word in enumerate((text or "").split(" ")):
            events.append(
                {
                    "type": "response.output_text.delta",
                    **ids,
                    "delta": (" " if i else "") + word,
                    "logprobs": [],
                }
            )
        events.append({"type": "response.output_text.done", **ids, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **ids, "part": item["content"][0]})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    final = {
        **resp,
        "status": "completed",
        "output": [item],
        "usage": usage(body, text, call),
        "completed_at": int(time.time()),
    }
    events.append({"type": "response.completed", "response": final})
    return events


async def stream_events(body: dict[str, Any], fault: Fault) -> AsyncIterator[bytes]:
    for seq, event in enumerate(_events(body)):
        if fault.cut_after is not None and seq >= fault.cut_after:
            raise StreamCut()
        if fault.end_after is not None and seq >= fault.end_after:
            return
        event["sequence_number"] = seq
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
