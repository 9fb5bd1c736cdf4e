"""The object-valued fields of a chat request, checked by the shapes OpenAI's spec documents."""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import bad_param, quote
from ailab.gateway.validate_parts import content, obj, string

CHOICE_SHAPES = (
    "none, auto, required, {type: function, function: {name}}, {type: custom, custom: {name}} "
    "or {type: allowed_tools, allowed_tools: {mode, tools}}"
)


def tools(key: str, v: Any) -> None:
    if not isinstance(v, list):
        raise bad_param(key, "must be an array")
    for i, tool in enumerate(v):
        where = f"{key}[{i}]"
        obj(where, tool)
        kind = tool.get("type")
        if kind == "function" or (kind is None and "function" in tool):
            _function(f"{where}.function", tool.get("function"))
        elif kind == "custom":
            custom = obj(f"{where}.custom", tool.get("custom"))
            _name(f"{where}.custom.name", custom.get("name"))
            if custom.get("format") is not None:
                obj(f"{where}.custom.format", custom["format"])
        elif kind is not None and not isinstance(kind, str):
            raise bad_param(f"{where}.type", "must be a string")
        # Other types (and no type: Gemini's native tools) are provider extensions the adapters judge.


def _function(where: str, fn: Any) -> None:
    if not isinstance(fn, dict):
        raise bad_param(f"{where}.name", "is required")
    _name(f"{where}.name", fn.get("name"))
    if fn.get("description") is not None:
        string(f"{where}.description", fn["description"])
    if fn.get("parameters") is not None:
        obj(f"{where}.parameters", fn["parameters"])
    strict = fn.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_param(f"{where}.strict", "must be a boolean")


def _name(where: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise bad_param(where, "is required")


def tool_choice(key: str, v: Any) -> None:
    if isinstance(v, str):
        if v not in ("none", "auto", "required"):
            raise bad_param(key, f"must be {CHOICE_SHAPES}, not {quote(v)}")
        return
    if not isinstance(v, dict):
        raise bad_param(key, f"must be {CHOICE_SHAPES}")
    kind = v.get("type")
    if kind in ("function", "custom"):
        named = obj(f"{key}.{kind}", v.get(kind))
        _name(f"{key}.{kind}.name", named.get("name"))
    elif kind == "allowed_tools":
        allowed = obj(f"{key}.allowed_tools", v.get("allowed_tools"))
        if allowed.get("mode") not in ("auto", "required"):
            raise bad_param(f"{key}.allowed_tools.mode", "must be 'auto' or 'required'")
        listed = allowed.get("tools")
        if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
            raise bad_param(f"{key}.allowed_tools.tools", "must be an array of tool objects")
    else:
        raise bad_param(f"{key}.type", f"must be function, custom or allowed_tools, not {quote(kind)}")


def functions(key: str, v: Any) -> None:
    if not isinstance(v, list) or not 1 <= len(v) <= 128:
        raise bad_param(key, "must be an array of 1 to 128 functions")
    for i, fn in enumerate(v):
        obj(f"{key}[{i}]", fn)
        _function(f"{key}[{i}]", fn)


def function_call(key: str, v: Any) -> None:
    if v in ("none", "auto"):
        return
    if not isinstance(v, dict) or not isinstance(v.get("name"), str):
        raise bad_param(key, "must be 'none', 'auto' or {name}")


def response_format(key: str, v: Any) -> None:
    if not isinstance(v, dict) or v.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_param(key, "must be {type: text|json_object|json_schema}")
    if v["type"] != "json_schema":
        return
    js = v.get("json_schema")
    if not isinstance(js, dict):
        raise bad_param(f"{key}.json_schema", "is required for type json_schema")
    _name(f"{key}.json_schema.name", js.get("name"))
    if js.get("schema") is not None:
        obj(f"{key}.json_schema.schema", js["schema"])
    if js.get("strict") is not None and not isinstance(js["strict"], bool):
        raise bad_param(f"{key}.json_schema.strict", "must be a boolean")


def stream_options(key: str, v: Any) -> None:
    obj(key, v)
    for flag in ("include_usage", "include_obfuscation"):
        if v.get(flag) is not None and not isinstance(v[flag], bool):
            raise bad_param(f"{key}.{flag}", "must be a boolean")


def audio(key: str, v: Any) -> None:
    obj(key, v)
    voice = v.get("voice")
    if not isinstance(voice, str) and not (isinstance(voice, dict) and isinstance(voice.get("id"), str)):
        raise bad_param(f"{key}.voice", "is required: a voice name or {id}")
    if v.get("format") not in ("wav", "aac", "mp3", "flac", "opus", "pcm16"):
        raise bad_param(f"{key}.format", "must be one of wav, aac, mp3, flac, opus, pcm16")


def prediction(key: str, v: Any) -> None:
    obj(key, v)
    if v.get("type") != "content":
        raise bad_param(f"{key}.type", "must be 'content'")
    if v.get("content") is None:
        raise bad_param(f"{key}.content", "is required")
    content(f"{key}.content", v["content"], ("text",))


def web_search_options(key: str, v: Any) -> None:
    obj(key, v)
    size = v.get("search_context_size")
    if size is not None and size not in ("low", "medium", "high"):
        raise bad_param(f"{key}.search_context_size", "must be low, medium or high")
    loc = v.get("user_location")
    if loc is None:
        return
    obj(f"{key}.user_location", loc)
    if loc.get("type") != "approximate":
        raise bad_param(f"{key}.user_location.type", "must be 'approximate'")
    approx = obj(f"{key}.user_location.approximate", loc.get("approximate"))
    for field in ("country", "region", "city", "timezone"):
        if approx.get(field) is not None:
            string(f"{key}.user_location.approximate.{field}", approx[field])
