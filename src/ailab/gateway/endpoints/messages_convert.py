"""Anthropic Messages ⇄ OpenAI chat, the inverse of providers/anthropic_convert.py (which maps chat requests
to Messages and Messages responses back to chat): a Messages request becomes a chat request for any
provider, and the chat answer becomes a Message. Usage and stop reasons use the same tables both ways.

Pure functions; a feature one side cannot express raises a 400 UpstreamError (not retried, no cooldown),
so a group mixing Anthropic and other deployments refuses it only where it must.
"""

from __future__ import annotations

from typing import Any

import orjson

from ailab.gateway.ids import random_hex
from ailab.gateway.providers.anthropic_convert import FINISH_REASONS, bad_request, usage_from
from ailab.gateway.providers.base import estimate_tokens
from ailab.gateway.types import Usage

# OpenAI finish_reason -> Anthropic stop_reason: the inverse of FINISH_REASONS, first Anthropic name wins.
STOP_REASONS: dict[str, str] = {}
for _anthropic, _openai in FINISH_REASONS.items():
    STOP_REASONS.setdefault(_openai, _anthropic)
STOP_REASONS["function_call"] = "tool_use"
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# Sampling fields OpenAI-compatible servers refuse; Gemini and Ollama adapters map them.
NOT_FOR_OPENAI = ("top_k",)


# -- request: Messages -> chat ------------------------------------------------------------------------


def to_chat(body: dict[str, Any], provider: str = "") -> dict[str, Any]:
    """The chat request for a validated Messages request (see messages_validate), for `provider`."""
    messages: list[dict[str, Any]] = []
    system = system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for m in body["messages"]:
        messages.extend(_turn(m))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_tokens") is not None:
        chat["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None and not (key in NOT_FOR_OPENAI and provider in ("openai", "azure")):
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = str(user)
    _tools(body, chat)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(str(b.get("text") or "") for b in system or () if isinstance(b, dict))


def blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def _turn(m: dict[str, Any]) -> list[dict[str, Any]]:
    if m["role"] == "assistant":
        return [_assistant(blocks(m["content"]))]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    # Tool results come first in an Anthropic user turn; in chat they are tool messages that must follow
    # the assistant's tool_calls directly, so they go before the user's other content.
    for block in blocks(m["content"]):
        if block["type"] == "tool_result":
            out.append(_tool_message(block))
        elif (part := _user_part(block)) is not None:
            parts.append(part)
    if parts:
        single = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if single else parts})
    return out


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": block["text"]} if block["text"] else None
    source = block.get("source") or {}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source_url(source, "image")}}
    if source.get("type") == "text":  # a plain-text document is just text
        return {"type": "text", "text": str(source.get("data") or "")}
    if source.get("type") != "base64":
        raise bad_request("document blocks need a base64 source on this model's provider")
    return {"type": "file", "file": {"file_data": _source_url(source, "document")}}


def _source_url(source: dict[str, Any], what: str) -> str:
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url":
        return str(source["url"])
    raise bad_request(f"{what} source type {source.get('type')!r} is not supported on this model's provider")


def _tool_message(block: dict[str, Any]) -> dict[str, Any]:
    inner = block.get("content")
    if isinstance(inner, list):
        if any(isinstance(b, dict) and b.get("type") != "text" for b in inner):
            raise bad_request("tool_result blocks may only hold text on this model's provider")
        text = "\n".join(str(b.get("text") or "") for b in inner if isinstance(b, dict))
    else:
        text = str(inner or "")
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _assistant(content: list[dict[str, Any]]) -> dict[str, Any]:
    texts = [str(b["text"]) for b in content if b["type"] == "text"]
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in content
        if b["type"] == "tool_use"
    ]
    # Thinking blocks are the model's own scratch space: other providers have no slot for them.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(body: dict[str, Any], chat: dict[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return
    out = []
    for tool in tools:
        if tool.get("type") not in (None, "custom"):
            raise bad_request(
                f"tool type {tool['type']!r} (an Anthropic server tool) needs an Anthropic model"
            )
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    chat["tools"] = out
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice["type"]
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat["tool_choice"] = TOOL_CHOICES[kind]
    if choice.get("disable_parallel_tool_use") and kind != "none":
        chat["parallel_tool_calls"] = False


# -- response: chat -> Message ------------------------------------------------------------------------


def to_message(chat: dict[str, Any], model: str) -> dict[str, Any]:
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text(msg.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls") or []
    content.extend(tool_use_block(c) for c in calls if isinstance(c, dict))
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": anthropic_usage(Usage.from_openai(chat.get("usage")) or Usage()),
    }


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or new_id("toolu_"),
        "name": fn.get("name") or "",
        "input": parse_arguments(fn.get("arguments")),
    }


def parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}  # a model's malformed JSON: Anthropic's input is always an object
    return value if isinstance(value, dict) else {}


def stop_reason(finish: Any, tool_calls: bool = False) -> str:
    if tool_calls:
        return "tool_use"  # some providers (Ollama) say "stop" after a tool call
    return STOP_REASONS.get(str(finish), "end_turn") if finish else "end_turn"


def message_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id.startswith("msg_"):
        return chat_id
    return f"msg_{chat_id}" if isinstance(chat_id, str) and chat_id else new_id("msg_")


def new_id(prefix: str) -> str:
    return prefix + random_hex(12)


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI semantics (prompt tokens include cache reads and writes) to Anthropic's (they do not)."""
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def native_usage(message: dict[str, Any]) -> Usage | None:
    """The ledger's Usage of a native Messages answer (cache reads and writes kept)."""
    raw = message.get("usage")
    return usage_from(raw) if isinstance(raw, dict) else None


# -- tokens -------------------------------------------------------------------------------------------


def request_text(body: dict[str, Any]) -> str:
    """Everything of a Messages request a model reads, as text (for estimates and budget reservations)."""
    parts = [system_text(body.get("system"))]
    for m in body.get("messages") or ():
        for b in blocks(m.get("content")) if isinstance(m, dict) else ():
            parts.append(_block_text(b))
    for tool in body.get("tools") or ():
        parts.append(orjson.dumps(tool).decode())
    return "\n".join(p for p in parts if p)


def _block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text") or "")
    if kind == "tool_use":
        return f"{block.get('name')} {orjson.dumps(block.get('input') or {}).decode()}"
    if kind == "tool_result":
        return "\n".join(_block_text(b) for b in blocks(block.get("content")))
    if kind == "thinking":
        return str(block.get("thinking") or "")
    return ""


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """count_tokens for a model that is not Anthropic's: the gateway's own estimate (~4 characters a
    token, the one budgets reserve with), not the upstream model's tokenizer."""
    return estimate_tokens(request_text(body))
