"""Checks of an Anthropic Messages request (POST /v1/messages and /v1/messages/count_tokens) by the shapes
Anthropic documents: each check names the field the way Anthropic's own 400s do (`messages.0.content`).

Only what the gateway needs to route, meter and translate is checked; fields it does not know pass through
to Anthropic deployments untouched (Anthropic then judges them) and are ignored on translated ones.
"""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import GatewayError, quote

ROLES = ("user", "assistant")
USER_BLOCKS = ("text", "image", "document", "tool_result")
ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")
TOOL_CHOICES = ("auto", "any", "tool", "none")


def invalid(where: str, message: str) -> GatewayError:
    """Anthropic's 400 (`invalid_request_error`), naming the field."""
    return GatewayError(400, f"{where}: {message}", param=where, code="invalid_request_error")


def validate_messages(body: dict[str, Any], count_only: bool = False) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Field required (a non-empty string)")
    if not count_only:
        _max_tokens(body.get("max_tokens"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "Field required (a non-empty list of messages)")
    for i, m in enumerate(messages):
        _message(i, m)
    _system(body.get("system"))
    _numbers(body)
    _stop_sequences(body.get("stop_sequences"))
    _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"), body.get("tools"))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata", "Input should be an object")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise invalid("stream", "Input should be a valid boolean")


def _max_tokens(value: Any) -> None:
    if value is None:
        raise invalid("max_tokens", "Field required")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid("max_tokens", "Input should be an integer greater than or equal to 1")


def _numbers(body: dict[str, Any]) -> None:
    for key, hi in (("temperature", 1.0), ("top_p", 1.0)):
        v = body.get(key)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= hi):
            raise invalid(key, f"Input should be a number between 0 and {hi:g}")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise invalid("top_k", "Input should be a non-negative integer")


def _stop_sequences(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise invalid("stop_sequences", "Input should be a list of non-empty strings")


def _system(value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise invalid("system", "Input should be a string or a list of text blocks")
    for j, block in enumerate(value):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise invalid(f"system.{j}", "Input should be a text block")


def _message(i: int, m: Any) -> None:
    where = f"messages.{i}"
    if not isinstance(m, dict):
        raise invalid(where, "Input should be an object")
    role = m.get("role")
    if role not in ROLES:
        raise invalid(f"{where}.role", f"Input should be 'user' or 'assistant', not {quote(role)}")
    content = m.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"{where}.content", "Field required (a string or a list of content blocks)")
    allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
    for j, block in enumerate(content):
        _block(f"{where}.content.{j}", block, allowed)


def _block(where: str, block: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(block, dict):
        raise invalid(where, "Input should be an object")
    kind = block.get("type")
    if kind not in allowed:
        raise invalid(f"{where}.type", f"Input should be one of {', '.join(allowed)}, not {quote(kind)}")
    if kind == "text" and not isinstance(block.get("text"), str):
        raise invalid(f"{where}.text", "Field required")
    elif kind in ("image", "document"):
        _source(f"{where}.source", block.get("source"))
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise invalid(where, "tool_use blocks need a string `id` and `name`")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.input", "Input should be an object")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_use_id", "Field required")
        inner = block.get("content")
        if inner is not None and not isinstance(inner, str | list):
            raise invalid(f"{where}.content", "Input should be a string or a list of content blocks")
        for k, part in enumerate(inner if isinstance(inner, list) else ()):
            _block(f"{where}.content.{k}", part, ("text", "image", "document"))


def _source(where: str, source: Any) -> None:
    if not isinstance(source, dict):
        raise invalid(where, "Field required")
    kind = source.get("type")
    if kind == "base64":
        if not isinstance(source.get("media_type"), str) or not isinstance(source.get("data"), str):
            raise invalid(where, "base64 sources need `media_type` and `data` strings")
    elif kind == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise invalid(f"{where}.url", "Field required")
    elif kind not in ("text", "file", "content"):
        raise invalid(f"{where}.type", f"Input should be 'base64' or 'url', not {quote(kind)}")


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid("tools", "Input should be a list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid(f"tools.{i}.name", "Field required")
        kind = tool.get("type")
        if kind in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{i}.input_schema", "Field required (a JSON schema object)")


def _tool_choice(choice: Any, tools: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("tool_choice.name", "Field required")
        if not any(isinstance(t, dict) and t.get("name") == name for t in tools or ()):
            raise invalid("tool_choice.name", f"names no tool in `tools`: {quote(name)}")
