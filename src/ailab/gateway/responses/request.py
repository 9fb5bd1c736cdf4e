"""Check a Responses API request and normalise its input to items, with OpenAI's parameter names in every
error (`input[2].content[0].text`), so a client learns exactly which field to fix.

Normalised items are what the store keeps and `input_items` lists: each has a `type` and an `id`; a message's
content is always a list of parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ailab.gateway.errors import GatewayError, bad_param, quote
from ailab.gateway.ids import random_hex

KNOWN = frozenset(
    {
        "background",
        "context_management",
        "conversation",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
# Documented, but they need state or services the lab does not have: refused rather than ignored.
UNSUPPORTED = {
    "background": "background responses are not supported by this gateway",
    "conversation": "the Conversations API is not supported by this gateway: use previous_response_id",
    "prompt": "prompt templates are not supported by this gateway",
}
ROLES = ("user", "assistant", "system", "developer")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "item_reference")
PART_TYPES = ("input_text", "input_image", "input_file", "output_text", "refusal")
PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
MAX_METADATA = 16


def new_id(prefix: str) -> str:
    return f"{prefix}_{random_hex(16)}"


def new_response_id() -> str:
    """`resp_` and 32 hex digits like `new_id`, but the first 14 are the time in µs: the stored responses'
    primary-key index then grows at its end (a batch touches a few pages, not one random page per row).
    The other 72 bits stay random; an id is no credential anyway (a response is only its owner's). Two ids
    made in the same µs get increasing times, so one process's ids are strictly ordered."""
    micros = max(time.time_ns() // 1000, _last_micros[0] + 1)
    _last_micros[0] = micros
    return f"resp_{micros:014x}{random_hex(9)}"


_last_micros = [0]  # the time part of this process's last response id


def unknown(param: str) -> GatewayError:
    return GatewayError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def validate(body: dict[str, Any]) -> None:
    """Raise a 400 naming the first bad parameter; the input items are checked by `normalise`."""
    for key in body:
        if key not in KNOWN:
            raise unknown(key)
    for key, why in UNSUPPORTED.items():
        if body.get(key):
            raise GatewayError(400, f"{key}: {why}", param=key, code="unsupported_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_param("model", "required: the model group to use (a string)")
    if "input" not in body or body["input"] is None:
        raise bad_param("input", "required: a string or a list of input items")
    if not isinstance(body["input"], (str, list)):
        raise bad_param("input", f"expected a string or a list of items, got {quote(body['input'])}")
    for key, check in CHECKS:  # in this order, each only if sent (most requests send a few)
        if key in body:
            check(key, body[key])


def _of(kind: type) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if value is not None and not isinstance(value, kind):
            raise bad_param(key, f"expected a {kind.__name__}, got {quote(value)}")

    return check


def _number(low: float, high: float) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            raise bad_param(key, f"expected a number from {low:g} to {high:g}, got {quote(value)}")

    return check


def _tokens(key: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise bad_param(key, f"expected a positive integer, got {quote(value)}")


def _metadata(meta: Any) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise bad_param("metadata", "expected an object of string keys and string values")
    if len(meta) > MAX_METADATA:
        raise bad_param("metadata", f"at most {MAX_METADATA} keys, got {len(meta)}")
    for k, v in meta.items():
        if len(k) > 64:
            raise bad_param(f"metadata.{k[:64]}", "keys are at most 64 characters")
        if not isinstance(v, str) or len(v) > 512:
            raise bad_param(f"metadata.{k}", "values are strings of at most 512 characters")


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad_param("tools", "expected a list of tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad_param(f"{where}.type", "each tool is an object with a string `type`")
        if tool["type"] != "function":
            continue  # hosted tools: passed to native upstreams, refused when translated
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise bad_param(f"{where}.name", "required: the function's name")
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise bad_param(f"{where}.parameters", "expected a JSON schema object")


def _text(text: Any) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise bad_param("text", "expected an object such as {'format': {'type': 'text'}}")
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_param("text.format.type", "expected one of 'text', 'json_object', 'json_schema'")
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str) or not fmt["name"]:
            raise bad_param("text.format.name", "required for the json_schema format")
        if not isinstance(fmt.get("schema"), dict):
            raise bad_param("text.format.schema", "required for the json_schema format: a JSON schema object")


# The optional parameters' checks, in the order their errors are reported.
CHECKS: tuple[tuple[str, Callable[[str, Any], None]], ...] = (
    ("instructions", _of(str)),
    ("previous_response_id", _of(str)),
    ("store", _of(bool)),
    ("stream", _of(bool)),
    ("parallel_tool_calls", _of(bool)),
    ("temperature", _number(0.0, 2.0)),
    ("top_p", _number(0.0, 1.0)),
    ("max_output_tokens", _tokens),
    ("metadata", lambda _, value: _metadata(value)),
    ("tools", lambda _, value: _tools(value)),
    ("text", lambda _, value: _text(value)),
)


# -- input items --------------------------------------------------------------------------------------


def normalise(raw: str | list[Any]) -> list[dict[str, Any]]:
    """The request's input as items, each with a type and an id (checked, with precise params)."""
    if isinstance(raw, str):
        return [_message("user", [{"type": "input_text", "text": raw}])]
    return [_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def _message(role: str, content: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    out = {"type": "message", "id": item_id or new_id("msg"), "role": role, "content": content}
    if role == "assistant":
        out["status"] = "completed"
    return out


def _item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise bad_param(where, f"expected an input item object, got {quote(item)}")
    kind = item.get("type", "message" if "role" in item else None)
    if kind not in ITEM_TYPES:
        raise bad_param(f"{where}.type", f"expected one of {', '.join(ITEM_TYPES)}, got {quote(kind)}")
    if kind == "message":
        return _message_item(item, where)
    out = {**item, "type": kind}
    out.setdefault("id", new_id(PREFIX.get(kind, "item")))
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise bad_param(f"{where}.{key}", "required: a string")
        out.setdefault("status", "completed")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise bad_param(f"{where}.call_id", "required: the call_id of the function call it answers")
        if not isinstance(item.get("output"), (str, list)):
            raise bad_param(f"{where}.output", "required: a string or a list of content parts")
        out.setdefault("status", "completed")
    elif kind == "item_reference" and not isinstance(item.get("id"), str):
        raise bad_param(f"{where}.id", "required: the id of the item referred to")
    return out


def _message_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise bad_param(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {quote(role)}")
    content = item.get("content")
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        parts = [_text_part(text_type, content)]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    else:
        raise bad_param(f"{where}.content", "required: a string or a list of content parts")
    item_id = item.get("id") if isinstance(item.get("id"), str) else None
    return _message(role, parts, item_id)


def _text_part(kind: str, text: str) -> dict[str, Any]:
    if kind == "output_text":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": kind, "text": text}


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
        got = part.get("type") if isinstance(part, dict) else part
        raise bad_param(f"{where}.type", f"expected one of {', '.join(PART_TYPES)}, got {quote(got)}")
    kind = part["type"]
    if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
        raise bad_param(f"{where}.text", "required: a string")
    if kind == "refusal" and not isinstance(part.get("refusal"), str):
        raise bad_param(f"{where}.refusal", "required: a string")
    if kind == "input_image" and not (isinstance(part.get("image_url"), str) or part.get("file_id")):
        raise bad_param(f"{where}.image_url", "required: a URL or a data: URL of the image")
    if kind == "output_text":
        return {"annotations": [], "logprobs": [], **part}
    return dict(part)
