"""Shared checks for validate.py: strings, objects, message content parts and assistant tool calls."""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import bad_param, quote

# vLLM and other OpenAI-compatible servers take these user parts too; the adapters refuse them with a 400.
EXTRA_USER_PARTS = ("video_url", "audio_url")
IMAGE_DETAIL = ("auto", "low", "high")
AUDIO_INPUT_FORMATS = ("wav", "mp3")


def string(where: str, v: Any) -> None:
    if not isinstance(v, str):
        raise bad_param(where, "must be a string")


def obj(where: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise bad_param(where, "must be an object")
    return v


def content(where: str, value: Any, types: tuple[str, ...]) -> None:
    """A message's content: a string, or a non-empty array of parts of the given types."""
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise bad_param(where, "must be a string or an array of content parts")
    if not value:
        raise bad_param(where, "must not be an empty array")
    for j, part in enumerate(value):
        _part(f"{where}[{j}]", part, types)


def _part(where: str, part: Any, types: tuple[str, ...]) -> None:
    if not isinstance(part, dict):
        raise bad_param(where, "must be an object")
    kind = part.get("type")
    if kind not in types:
        if "image_url" in types and kind in EXTRA_USER_PARTS:
            obj(f"{where}.{kind}", part.get(kind))
            return
        raise bad_param(f"{where}.type", f"must be one of {', '.join(types)}, not {quote(kind)}")
    if kind == "text":
        string(f"{where}.text", part.get("text"))
    elif kind == "refusal":
        string(f"{where}.refusal", part.get("refusal"))
    elif kind == "image_url":
        _image(f"{where}.image_url", part.get("image_url"))
    elif kind == "input_audio":
        audio = obj(f"{where}.input_audio", part.get("input_audio"))
        string(f"{where}.input_audio.data", audio.get("data"))
        if audio.get("format") not in AUDIO_INPUT_FORMATS:
            raise bad_param(f"{where}.input_audio.format", "must be 'wav' or 'mp3'")
    elif kind == "file":
        file = obj(f"{where}.file", part.get("file"))
        for key in ("file_data", "file_id", "filename"):
            if file.get(key) is not None:
                string(f"{where}.file.{key}", file[key])


def _image(where: str, image: Any) -> None:
    obj(where, image)
    url = image.get("url")
    if not isinstance(url, str) or not url:
        raise bad_param(f"{where}.url", "is required and must be a string")
    detail = image.get("detail")
    if detail is not None and detail not in IMAGE_DETAIL:
        raise bad_param(f"{where}.detail", f"must be one of {', '.join(IMAGE_DETAIL)}")


def message_tool_calls(where: str, calls: Any) -> None:
    """An assistant turn's tool_calls: function calls (name, arguments as a JSON string) or custom ones."""
    if not isinstance(calls, list):
        raise bad_param(where, "must be an array")
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        obj(at, call)
        string(f"{at}.id", call.get("id"))
        kind = call.get("type", "function")
        if kind == "function":
            fn = obj(f"{at}.function", call.get("function"))
            string(f"{at}.function.name", fn.get("name"))
            string(f"{at}.function.arguments", fn.get("arguments"))
        elif kind == "custom":
            custom = obj(f"{at}.custom", call.get("custom"))
            string(f"{at}.custom.name", custom.get("name"))
            string(f"{at}.custom.input", custom.get("input"))
        else:
            raise bad_param(f"{at}.type", f"must be 'function' or 'custom', not {quote(kind)}")
