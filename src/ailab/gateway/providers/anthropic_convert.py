"""OpenAI chat request -> Anthropic Messages request, and Anthropic message -> OpenAI chat.completion.

Pure functions (no I/O) so the mapping is testable on its own; anthropic.py does the HTTP and streaming.
"""

from __future__ import annotations

from typing import Any

import orjson

from ailab.gateway.errors import quote
from ailab.gateway.providers.base import estimate_tokens, messages_text, now_ts, tool_choice
from ailab.gateway.types import UpstreamError, Usage

DEFAULT_MAX_TOKENS = 4096
# Anthropic has no JSON mode: structured output is forced through a tool call (as LiteLLM does).
JSON_TOOL = "json_tool_call"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
# Anthropic-native request fields a caller may pass straight through.
PASSTHROUGH = ("top_k", "thinking", "service_tier")


def bad_request(message: str) -> UpstreamError:
    return UpstreamError(f"anthropic: {message}", kind="http", status=400)


# -- request ------------------------------------------------------------------------------------------


def to_anthropic(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Build the Messages API payload; raises a 400 UpstreamError for params Anthropic cannot honour."""
    _reject_unsupported(body)
    system, messages = convert_messages(body.get("messages") or [])
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if system:
        payload["system"] = system
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            payload[key] = body[key]
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            payload[key] = body[key]
    _map_thinking(body, payload)
    payload["max_tokens"] = _max_tokens(body, payload)
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        payload["metadata"] = {"user_id": str(body["user"])}
    _map_tools(body, payload)
    _map_response_format(body, payload)
    return payload


def _reject_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("parameter `n` (multiple choices) is not supported; send n=1")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise bad_request("parameter `logprobs` is not supported")
    # seed, presence/frequency penalties, logit_bias are sampling hints with no Anthropic equivalent: ignored.


def _max_tokens(body: dict[str, Any], payload: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    if value is not None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request("parameter `max_tokens` must be a positive integer")
        return value
    budget = (payload.get("thinking") or {}).get("budget_tokens")
    # max_tokens must exceed the thinking budget, so leave room for the answer too.
    return DEFAULT_MAX_TOKENS + budget if isinstance(budget, int) else DEFAULT_MAX_TOKENS


def _map_thinking(body: dict[str, Any], payload: dict[str, Any]) -> None:
    effort = body.get("reasoning_effort")
    if effort is None or "thinking" in payload or effort == "none":
        return
    if effort not in THINKING_BUDGETS:
        raise bad_request(f"parameter `reasoning_effort` has an unknown value {quote(effort)}")
    payload["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}


def _map_tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return  # a tool_choice without tools is meaningless and Anthropic rejects it
    payload["tools"] = [_tool(t) for t in tools]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice:
        payload["tool_choice"] = choice


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise bad_request(f"parameter `tools`: tool type {quote(kind)} is not supported")
    fn = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": fn.get("name"),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    if tool.get("cache_control"):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    parsed = tool_choice(choice, "anthropic")
    if parsed is None:
        return None
    mode, name = parsed
    if mode == "function":
        return {"type": "tool", "name": name}
    return {"type": {"auto": "auto", "required": "any", "none": "none"}[mode]}


def _map_response_format(body: dict[str, Any], payload: dict[str, Any]) -> None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    kind = fmt.get("type")
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    elif kind == "json_object":
        schema = {"type": "object", "additionalProperties": True}
    else:
        raise bad_request(f"parameter `response_format` type {quote(kind)} is not supported")
    if "tools" in payload:
        raise bad_request("parameter `response_format` cannot be combined with `tools`")
    payload["tools"] = [{"name": JSON_TOOL, "description": "Respond with JSON.", "input_schema": schema}]
    payload["tool_choice"] = {"type": "tool", "name": JSON_TOOL}


# -- messages -----------------------------------------------------------------------------------------


def convert_messages(messages: list[Any]) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """Split out system text; merge consecutive same-role turns (tool results become user turns)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if not isinstance(m, dict):
            raise bad_request("parameter `messages` must be a list of objects")
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(_with_cache(m, text_blocks(m.get("content"), "system")))
            continue
        if role == "user":
            role_out, blocks = "user", _with_cache(m, content_blocks(m.get("content")))
        elif role == "assistant":
            role_out, blocks = "assistant", _with_cache(m, assistant_blocks(m))
        elif role == "tool":
            role_out, blocks = "user", [tool_result(m)]
        else:
            raise bad_request(f"message role {quote(role)} is not supported")
        if not blocks:
            continue  # Anthropic rejects empty turns
        if out and out[-1]["role"] == role_out:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role_out, "content": blocks})
    return _system_value(system), out


def _system_value(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if not blocks:
        return None
    if len(blocks) == 1 and "cache_control" not in blocks[0]:
        return str(blocks[0]["text"])
    return blocks


def _with_cache(message: dict[str, Any], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # LiteLLM-style message-level cache_control marks the end of the message as a cache breakpoint.
    if message.get("cache_control") and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": message["cache_control"]}
    return blocks


def text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    blocks = content_blocks(content)
    for b in blocks:
        if b["type"] != "text":
            raise bad_request(f"{where} messages may only contain text")
    return blocks


def content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("message `content` must be a string or a list of parts")
    return [b for part in content if (b := _part(part)) is not None]


def _part(part: Any) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    block: dict[str, Any] | None
    if kind == "text":
        text = part.get("text") or ""
        block = {"type": "text", "text": text} if text else None
    elif kind == "image_url":
        block = {"type": "image", "source": _image_source(part.get("image_url"))}
    elif kind == "file":
        block = _document(part.get("file") or {})
    else:
        raise bad_request(f"content part type {quote(kind)} is not supported")
    if block is not None and part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _image_source(image: Any) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request("content part `image_url` needs a url")
    if url.startswith("data:"):
        media_type, data = _data_url(url)
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _document(file: dict[str, Any]) -> dict[str, Any]:
    data_url = file.get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise bad_request(
            "content part `file` needs `file_data` as a base64 data: URL (file_id is not supported)"
        )
    media_type, data = _data_url(data_url)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _data_url(url: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise bad_request("data: URLs must be base64 encoded with a media type")
    return media_type, data


def assistant_blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = content_blocks(m.get("content"))
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            args = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            at = quote(call.get("id"))
            raise bad_request(f"tool_calls[{at}].function.arguments is not valid JSON") from None
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args})
    return blocks


def tool_result(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.get("tool_call_id")}
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = content_blocks(content)
    return block


# -- response -----------------------------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop") if stop_reason else "stop"


def usage_from(raw: dict[str, Any]) -> Usage:
    """Anthropic's input_tokens exclude cache reads and writes; OpenAI's prompt_tokens include both."""
    read = int(raw.get("cache_read_input_tokens") or 0)
    write = int(raw.get("cache_creation_input_tokens") or 0)
    creation = raw.get("cache_creation")
    hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, dict) else None
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + read + write,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write, hour) if isinstance(hour, int) and hour > 0 else 0,
    )


def estimated_usage(body: dict[str, Any], output_text: str) -> dict[str, Any]:
    usage = Usage(
        prompt_tokens=estimate_tokens(messages_text(body.get("messages"))),
        completion_tokens=estimate_tokens(output_text),
        estimated=True,
    )
    return {**usage.to_openai(), "estimated": True}


def to_openai(data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL and json_mode(body):
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            args = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": args},
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    reason = "stop" if json_mode(body) and data.get("stop_reason") == "tool_use" else data.get("stop_reason")
    raw_usage = data.get("usage")
    usage = (
        usage_from(raw_usage).to_openai()
        if isinstance(raw_usage, dict)
        else estimated_usage(body, "".join(texts) + "".join(c["function"]["arguments"] for c in calls))
    )
    return {
        "id": data.get("id") or "msg_unknown",
        "object": "chat.completion",
        "created": now_ts(),
        "model": data.get("model") or body.get("model"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason(reason), "logprobs": None}
        ],
        "usage": usage,
    }


def json_mode(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
