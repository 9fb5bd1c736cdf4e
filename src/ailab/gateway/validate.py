"""Just-enough validation of OpenAI request bodies: each check names the field, nothing is rebuilt
(bodies pass through to the upstream as they came), and it costs microseconds, not a pydantic model.
"""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import bad_param

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICES = frozenset({"none", "auto", "required"})
NUMBER = (int, float)


def validate_chat(body: dict[str, Any]) -> None:
    _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_param("messages", "must be a non-empty array of messages")
    for i, m in enumerate(messages):
        _message(i, m)
    _optional(body, "stream", bool, "a boolean")
    if "stream_options" in body and body["stream_options"] is not None:
        if not isinstance(body["stream_options"], dict):
            raise bad_param("stream_options", "must be an object")
        if not body.get("stream"):
            raise bad_param("stream_options", "is only allowed when stream is true")
    _int_range(body, "n", 1, 128)
    _int_range(body, "max_tokens", 1, None)
    _int_range(body, "max_completion_tokens", 1, None)
    _num_range(body, "temperature", 0, 2)
    _num_range(body, "top_p", 0, 1)
    _num_range(body, "presence_penalty", -2, 2)
    _num_range(body, "frequency_penalty", -2, 2)
    _optional(body, "seed", int, "an integer")
    _stop(body.get("stop"))
    _tools(body)
    _response_format(body.get("response_format"))
    _fallbacks(body)


def validate_embeddings(body: dict[str, Any]) -> None:
    _model(body)
    inp = body.get("input")
    if isinstance(inp, str):
        if not inp:
            raise bad_param("input", "must not be empty")
    elif isinstance(inp, list) and inp:
        if not all(isinstance(x, str | int) or (isinstance(x, list) and x) for x in inp):
            raise bad_param("input", "must be a string, an array of strings, or arrays of token ids")
    else:
        raise bad_param("input", "must be a non-empty string or array")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_param("encoding_format", "must be 'float' or 'base64'")
    _int_range(body, "dimensions", 1, None)
    _fallbacks(body)


def _model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_param("model", "is required and must be a non-empty string")


def _message(i: int, m: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_param(where, "must be an object")
    role = m.get("role")
    if role not in ROLES:
        raise bad_param(f"{where}.role", f"must be one of {', '.join(sorted(ROLES))}")
    content = m.get("content")
    if content is None:
        # Only an assistant turn may omit content (it carries tool_calls instead).
        if role != "assistant":
            raise bad_param(f"{where}.content", "is required")
    elif not isinstance(content, str | list):
        raise bad_param(f"{where}.content", "must be a string or an array of content parts")
    if role == "tool" and not isinstance(m.get("tool_call_id"), str):
        raise bad_param(f"{where}.tool_call_id", "is required for tool messages")


def _optional(body: dict[str, Any], key: str, typ: type, what: str) -> None:
    v = body.get(key)
    if v is not None and (not isinstance(v, typ) or (typ is int and isinstance(v, bool))):
        raise bad_param(key, f"must be {what}")


def _int_range(body: dict[str, Any], key: str, lo: int, hi: int | None) -> None:
    v = body.get(key)
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise bad_param(key, f"must be an integer {bound}")


def _num_range(body: dict[str, Any], key: str, lo: float, hi: float) -> None:
    v = body.get(key)
    if v is None:
        return
    if not isinstance(v, NUMBER) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_param(key, f"must be a number between {lo} and {hi}")


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise bad_param("stop", "must be a string or an array of up to 4 strings")


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_param("tools", "must be an array")
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise bad_param(f"tools[{i}].function.name", "is required")
    choice = body.get("tool_choice")
    if choice is None or choice in TOOL_CHOICES:
        return
    if not isinstance(choice, dict) or not isinstance((choice.get("function") or {}).get("name"), str):
        raise bad_param("tool_choice", "must be none, auto, required or {type: function, function: {name}}")


def _response_format(rf: Any) -> None:
    if rf is None:
        return
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_param("response_format", "must be {type: text|json_object|json_schema}")
    if rf["type"] == "json_schema" and not isinstance(rf.get("json_schema"), dict):
        raise bad_param("response_format.json_schema", "is required for type json_schema")


def _fallbacks(body: dict[str, Any]) -> None:
    fb = body.get("fallbacks")
    if fb is not None and (not isinstance(fb, list) or not all(isinstance(x, str) for x in fb)):
        raise bad_param("fallbacks", "must be an array of model names")
