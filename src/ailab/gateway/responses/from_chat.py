"""Response objects: the skeleton that echoes the request (as OpenAI does), a chat completion's choice as
output items, and usage in the Responses shape (input/output tokens and their details)."""

from __future__ import annotations

import time
from typing import Any

from ailab.gateway.responses.request import new_id
from ailab.gateway.types import Usage

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def skeleton(
    body: dict[str, Any], response_id: str, model: str, created: int | None = None
) -> dict[str, Any]:
    """A Response with no output yet (`in_progress`), its request parameters echoed back."""
    get = body.get
    text = get("text") or {}
    tools = get("tools")
    out = {
        "id": response_id,
        "object": "response",
        "created_at": created or int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": get("instructions"),
        "max_output_tokens": get("max_output_tokens"),
        "max_tool_calls": get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": get("parallel_tool_calls", True),
        "previous_response_id": get("previous_response_id"),
        "reasoning": get("reasoning") or {"effort": None, "summary": None},
        "service_tier": get("service_tier") or "default",
        "store": get("store", True),
        "temperature": get("temperature", 1.0),
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity", "medium"),
        },
        "tool_choice": get("tool_choice", "auto"),
        "tools": [_echo_tool(t) for t in tools] if tools else [],
        "top_logprobs": get("top_logprobs", 0),
        "top_p": get("top_p", 1.0),
        "truncation": get("truncation") or "disabled",
        "metadata": get("metadata") or {},
    }
    if body.get("user") is not None:  # optional, and not nullable in the schema
        out["user"] = body["user"]
    return out


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    call_id: str, name: str, arguments: str, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id or new_id("fc"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's message as Responses output items: a message (text or refusal), then its calls."""
    message = choice.get("message") or {}
    out: list[dict[str, Any]] = []
    if message.get("refusal"):
        item = message_item("")
        item["content"] = [{"type": "refusal", "refusal": message["refusal"]}]
        out.append(item)
    elif message.get("content"):
        out.append(message_item(str(message["content"])))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        out.append(
            call_item(str(call.get("id") or new_id("call")), fn.get("name", ""), fn.get("arguments") or "")
        )
    return out


def complete(response: dict[str, Any], finish_reason: str | None, usage: Usage) -> dict[str, Any]:
    """Set the final status (incomplete when the answer was cut), usage and completion time."""
    reason = INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["completed_at"] = None if reason else int(time.time())
    response["usage"] = to_responses_usage(usage)
    return response


def from_chat(body: dict[str, Any], chat: dict[str, Any], response_id: str, usage: Usage) -> dict[str, Any]:
    """A whole chat completion as a Response object."""
    response = skeleton(body, response_id, str(chat.get("model") or body["model"]))
    choices = chat.get("choices") or [{}]
    response["output"] = output_items(choices[0])
    return complete(response, choices[0].get("finish_reason"), usage)


def to_responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def from_responses_usage(usage: Any) -> Usage | None:
    """A native upstream's Response usage in the ledger's terms (prompt tokens include cached ones)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
    )


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part.get("text", "")
        for item in response.get("output") or ()
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )
