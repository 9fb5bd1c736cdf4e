"""Validation of OpenAI request bodies by the shapes OpenAI's spec documents (CreateChatCompletionRequest,
CreateEmbeddingRequest). Each check names the field, nothing is rebuilt (bodies pass through to the upstream
as they came), and it costs microseconds, not a pydantic model: one table lookup per field present.

`null` counts as absent for every optional field; unknown fields (provider extensions such as `top_k`) pass
through untouched. Message content parts and the documented objects are checked one level deep, enough that
no adapter meets a shape it cannot handle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ailab.gateway.errors import bad_param, quote
from ailab.gateway.validate_fields import (
    audio,
    function_call,
    functions,
    prediction,
    response_format,
    stream_options,
    tool_choice,
    tools,
    web_search_options,
)
from ailab.gateway.validate_parts import content, message_tool_calls, obj, string

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
VERBOSITY = ("low", "medium", "high")
MAX_INPUTS = 2048

Check = Callable[[str, Any], None]


def validate_chat(body: dict[str, Any]) -> None:
    _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_param("messages", "must be a non-empty array of messages")
    for i, m in enumerate(messages):
        _message(i, m)
    for key, value in body.items():
        check = CHAT_FIELDS.get(key)
        if check is not None and value is not None:
            check(key, value)
    if body.get("stream_options") is not None and not body.get("stream"):
        raise bad_param("stream_options", "is only allowed when stream is true")


def validate_embeddings(body: dict[str, Any]) -> None:
    _model(body)
    _embedding_input(body.get("input"))
    for key, value in body.items():
        check = EMBEDDING_FIELDS.get(key)
        if check is not None and value is not None:
            check(key, value)


def _model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_param("model", "is required and must be a non-empty string")


# -- messages -------------------------------------------------------------------------------------------


def _message(i: int, m: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_param(where, "must be an object")
    role = m.get("role")
    if role not in ROLES:
        raise bad_param(f"{where}.role", f"must be one of {', '.join(ROLES)}, not {quote(role)}")
    if m.get("name") is not None:
        string(f"{where}.name", m["name"])
    value = m.get("content")
    if role == "assistant":
        _assistant(where, m, value)
    elif value is None:
        if role != "function":  # a legacy function result may carry null content
            raise bad_param(f"{where}.content", "is required")
    elif role in ("system", "developer", "tool"):
        content(f"{where}.content", value, ("text",))
    elif role == "user":
        content(f"{where}.content", value, ("text", "image_url", "input_audio", "file"))
    else:
        string(f"{where}.content", value)
    if role == "tool" and not isinstance(m.get("tool_call_id"), str):
        raise bad_param(f"{where}.tool_call_id", "is required for tool messages and must be a string")
    if role == "function" and not isinstance(m.get("name"), str):
        raise bad_param(f"{where}.name", "is required for function messages")


def _assistant(where: str, m: dict[str, Any], value: Any) -> None:
    # Content may be null or absent: the turn then carries tool_calls (or a legacy function_call).
    if value is not None:
        content(f"{where}.content", value, ("text", "refusal"))
    if m.get("refusal") is not None:
        string(f"{where}.refusal", m["refusal"])
    if m.get("tool_calls") is not None:
        message_tool_calls(f"{where}.tool_calls", m["tool_calls"])
    call = m.get("function_call")
    if call is not None:
        obj(f"{where}.function_call", call)
        string(f"{where}.function_call.name", call.get("name"))
        string(f"{where}.function_call.arguments", call.get("arguments"))
    audio = m.get("audio")
    if audio is not None:
        obj(f"{where}.audio", audio)
        string(f"{where}.audio.id", audio.get("id"))


# -- scalar fields --------------------------------------------------------------------------------------


def _boolean(key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise bad_param(key, "must be a boolean")


def _int_between(lo: int | None, hi: int | None) -> Check:
    def check(key: str, v: Any) -> None:
        if (
            not isinstance(v, int)
            or isinstance(v, bool)
            or (lo is not None and v < lo)
            or (hi is not None and v > hi)
        ):
            bound = (
                f" between {lo} and {hi}" if lo is not None and hi is not None else f" >= {lo}" if lo else ""
            )
            raise bad_param(key, f"must be an integer{bound}")

    return check


def _number_between(lo: float, hi: float) -> Check:
    def check(key: str, v: Any) -> None:
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            raise bad_param(key, f"must be a number between {lo:g} and {hi:g}")

    return check


def _one_of(*allowed: str) -> Check:
    def check(key: str, v: Any) -> None:
        if v not in allowed:
            raise bad_param(key, f"must be one of {', '.join(allowed)}, not {quote(v)}")

    return check


def _string(key: str, v: Any) -> None:
    string(key, v)


def _short_string(limit: int) -> Check:
    def check(key: str, v: Any) -> None:
        string(key, v)
        if len(v) > limit:
            raise bad_param(key, f"must be at most {limit} characters")

    return check


def _object(key: str, v: Any) -> None:
    obj(key, v)


def _stop(key: str, v: Any) -> None:
    if isinstance(v, str):
        return
    if not isinstance(v, list) or len(v) > 4 or not all(isinstance(s, str) for s in v):
        raise bad_param(key, "must be a string or an array of up to 4 strings")


def _logit_bias(key: str, v: Any) -> None:
    obj(key, v)
    for token, bias in v.items():
        if not isinstance(bias, int | float) or isinstance(bias, bool) or not -100 <= bias <= 100:
            raise bad_param(f"{key}.{quote(token, 20)}", "must be a number between -100 and 100")


def _metadata(key: str, v: Any) -> None:
    obj(key, v)
    if len(v) > 16:
        raise bad_param(key, "may hold at most 16 key-value pairs")
    for name, value in v.items():
        if len(name) > 64 or not isinstance(value, str) or len(value) > 512:
            raise bad_param(
                f"{key}.{quote(name, 20)}", "must be a string of at most 512 characters (keys up to 64)"
            )


def _modalities(key: str, v: Any) -> None:
    if not isinstance(v, list) or not all(x in ("text", "audio") for x in v):
        raise bad_param(key, "must be an array of 'text' and 'audio'")


def _fallbacks(key: str, v: Any) -> None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad_param(key, "must be an array of model names")


CHAT_FIELDS: dict[str, Check] = {
    "stream": _boolean,
    "logprobs": _boolean,
    "store": _boolean,
    "parallel_tool_calls": _boolean,
    "n": _int_between(1, 128),
    "max_tokens": _int_between(1, None),
    "max_completion_tokens": _int_between(1, None),
    "top_logprobs": _int_between(0, 20),
    "seed": _int_between(None, None),
    "temperature": _number_between(0, 2),
    "top_p": _number_between(0, 1),
    "presence_penalty": _number_between(-2, 2),
    "frequency_penalty": _number_between(-2, 2),
    "stop": _stop,
    "logit_bias": _logit_bias,
    "metadata": _metadata,
    "user": _string,
    "safety_identifier": _short_string(64),
    "prompt_cache_key": _string,
    "prompt_cache_retention": _one_of("in_memory", "24h"),
    "service_tier": _one_of(*SERVICE_TIERS),
    "reasoning_effort": _one_of(*REASONING_EFFORTS),
    "verbosity": _one_of(*VERBOSITY),
    "modalities": _modalities,
    "audio": audio,
    "prediction": prediction,
    "response_format": response_format,
    "web_search_options": web_search_options,
    "stream_options": stream_options,
    "tools": tools,
    "tool_choice": tool_choice,
    "functions": functions,
    "function_call": function_call,
    "moderation": _object,
    "prompt_cache_options": _object,
    "fallbacks": _fallbacks,
}


# -- embeddings -----------------------------------------------------------------------------------------


def _embedding_input(inp: Any) -> None:
    if isinstance(inp, str):
        if not inp:
            raise bad_param("input", "must not be empty")
        return
    if not isinstance(inp, list) or not inp:
        raise bad_param("input", "must be a non-empty string or array")
    if len(inp) > MAX_INPUTS:
        raise bad_param("input", f"may hold at most {MAX_INPUTS} items")
    first = inp[0]
    if isinstance(first, str):
        ok = all(isinstance(x, str) for x in inp)
    elif isinstance(first, int) and not isinstance(first, bool):
        ok = all(isinstance(x, int) and not isinstance(x, bool) for x in inp)
    else:
        ok = all(
            isinstance(x, list) and x and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
            for x in inp
        )
    if not ok:
        raise bad_param(
            "input", "must be a string, an array of strings, an array of token ids or an array of those"
        )


EMBEDDING_FIELDS: dict[str, Check] = {
    "encoding_format": _one_of("float", "base64"),
    "dimensions": _int_between(1, None),
    "user": _string,
    "fallbacks": _fallbacks,
}
