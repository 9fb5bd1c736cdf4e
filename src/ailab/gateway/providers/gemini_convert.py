"""OpenAI chat request -> Gemini generateContent request, and Gemini response -> OpenAI chat.completion.

Pure functions (no I/O) so the mapping is testable on its own; gemini.py does the HTTP and streaming.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from ailab.gateway.errors import quote
from ailab.gateway.providers.base import estimate_tokens, messages_text, tool_choice
from ailab.gateway.types import UpstreamError, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
# Gemini has no OpenAI equivalent for these; silently dropping them would change the answer's meaning.
REJECTED = ("logprobs", "top_logprobs", "logit_bias", "functions", "function_call", "audio")
# Keywords Gemini's OpenAPI-subset `Schema` accepts; anything else goes as full JSON Schema instead.
SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
THINKING_BUDGETS = {
    "none": 0, "minimal": 512, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 24576,
}  # fmt: skip
NATIVE_TOOL_KEYS = frozenset(
    {"googleSearch", "google_search", "codeExecution", "code_execution", "urlContext", "url_context"}
)
SIGNATURE_SEP = "__thought__"


def bad_request(message: str) -> UpstreamError:
    return UpstreamError(f"gemini: {message}", kind="http", status=400)


# -- request ------------------------------------------------------------------------------------------


def to_gemini(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Build the generateContent payload; raises a 400 UpstreamError for params Gemini cannot honour."""
    for key in REJECTED:
        if body.get(key):
            raise bad_request(f"parameter `{key}` is not supported")
    system, contents = convert_messages(body.get("messages") or [])
    if not contents:
        raise bad_request("parameter `messages` needs at least one user or assistant message")
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": system}
    config = generation_config(body, model)
    if config:
        payload["generationConfig"] = config
    _map_tools(body, payload)
    if body.get("safety_settings"):
        payload["safetySettings"] = body["safety_settings"]
    if body.get("cached_content"):
        payload["cachedContent"] = body["cached_content"]
    return payload


def generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    simple = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "seed": "seed",
              "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}  # fmt: skip
    for key, name in simple.items():
        if body.get(key) is not None:
            config[name] = body[key]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("n") is not None:
        config["candidateCount"] = body["n"]
    _map_response_format(body.get("response_format"), config)
    thinking = _thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _map_response_format(fmt: Any, config: dict[str, Any]) -> None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    kind = fmt.get("type")
    if kind not in ("json_object", "json_schema"):
        raise bad_request(f"parameter `response_format` type {quote(kind)} is not supported")
    config["responseMimeType"] = "application/json"
    schema = (fmt.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
    if isinstance(schema, dict):
        config["responseSchema" if openapi_compatible(schema) else "responseJsonSchema"] = schema


def _thinking_config(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    thinking = body.get("thinking")  # LiteLLM / Anthropic style: {"type": "enabled", "budget_tokens": N}
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        out: dict[str, Any] = {"includeThoughts": True}
        if thinking.get("budget_tokens") is not None:
            out["thinkingBudget"] = thinking["budget_tokens"]
        return out
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in THINKING_BUDGETS:
        raise bad_request(f"parameter `reasoning_effort` has an unknown value {quote(effort)}")
    if model.startswith("gemini-3"):  # Gemini 3 takes levels; older thinking models take token budgets
        level = {"none": "minimal", "xhigh": "high", "max": "high"}.get(effort, effort)
        return {"thinkingLevel": level}
    return {"thinkingBudget": THINKING_BUDGETS[effort]}


def openapi_compatible(schema: Any) -> bool:
    """True when `schema` only uses keywords of Gemini's `Schema` object (which rejects unknown ones)."""
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key not in SCHEMA_KEYS or (key == "type" and not isinstance(value, str)):
            return False
        if key == "properties" and not (
            isinstance(value, dict) and all(openapi_compatible(v) for v in value.values())
        ):
            return False
        if key == "items" and not openapi_compatible(value):
            return False
        if key == "anyOf" and not (isinstance(value, list) and all(openapi_compatible(v) for v in value)):
            return False
    return True


def _map_tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, dict) and "type" not in tool and tool.keys() <= NATIVE_TOOL_KEYS:
            native.append(tool)  # Gemini built-in tools (search, code execution) pass through
        else:
            declarations.append(_declaration(tool))
    payload["tools"] = ([{"functionDeclarations": declarations}] if declarations else []) + native
    mode = _tool_config(body.get("tool_choice"))
    if mode:
        payload["toolConfig"] = {"functionCallingConfig": mode}


def _declaration(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise bad_request(f"parameter `tools`: tool type {quote(kind)} is not supported")
    fn = tool.get("function") or {}
    if not fn.get("name"):
        raise bad_request("parameter `tools`: every function needs a name")
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    # Gemini rejects an OBJECT schema with no properties, so a no-argument function sends none.
    if isinstance(params, dict) and params.get("properties"):
        out["parameters" if openapi_compatible(params) else "parametersJsonSchema"] = params
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    parsed = tool_choice(choice, "gemini")
    if parsed is None:
        return None
    mode, name = parsed
    if mode == "function":
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    return {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[mode]}


# -- messages -----------------------------------------------------------------------------------------


def convert_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split out system parts; merge consecutive same-role turns (parallel tool results share one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name: functionResponse needs the name
    for m in messages:
        if not isinstance(m, dict):
            raise bad_request("parameter `messages` must be a list of objects")
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(_system_parts(m.get("content")))
            continue
        if role == "user":
            role_out, parts = "user", content_parts(m.get("content"))
        elif role == "assistant":
            role_out, parts = "model", _assistant_parts(m, names)
        elif role == "tool":
            role_out, parts = "user", [_tool_response(m, names)]
        else:
            raise bad_request(f"message role {quote(role)} is not supported")
        if not parts:
            continue  # Gemini rejects a content with no parts
        if contents and contents[-1]["role"] == role_out:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role_out, "parts": parts})
    return system, contents


def _system_parts(content: Any) -> list[dict[str, Any]]:
    parts = content_parts(content)
    if any("text" not in p for p in parts):
        raise bad_request("system messages may only contain text")
    return parts


def content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("message `content` must be a string or a list of parts")
    return [p for part in content if (p := _part(part)) is not None]


def _part(part: Any) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        fmt = image.get("format") if isinstance(image, dict) else None
        return _media(url, fmt, "image/jpeg", "image_url")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format") or "wav")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data") or ""}}
    if kind == "file":
        file = part.get("file") or {}
        return _media(file.get("file_data") or file.get("file_id"), file.get("format"), None, "file")
    raise bad_request(f"content part type {quote(kind)} is not supported")


def _media(url: Any, fmt: Any, default_mime: str | None, where: str) -> dict[str, Any]:
    """data: URLs go inline; http(s), gs:// and Files API URIs go by reference as fileData."""
    if not isinstance(url, str) or not url:
        raise bad_request(f"content part `{where}` needs a url or data")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise bad_request("data: URLs must be base64 encoded with a media type")
        return {"inlineData": {"mimeType": mime, "data": data}}
    guessed = fmt or mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
    ref: dict[str, Any] = {"fileUri": url}
    if guessed:
        ref["mimeType"] = guessed
    return {"fileData": ref}


def _assistant_parts(m: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    parts = content_parts(m.get("content"))
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            args = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            at = quote(call.get("id"))
            raise bad_request(f"tool_calls[{at}].function.arguments is not valid JSON") from None
        if not isinstance(args, dict):
            at = quote(call.get("id"))
            raise bad_request(f"tool_calls[{at}].function.arguments must be a JSON object")
        call_id = str(call.get("id") or "")
        names[call_id] = str(fn.get("name") or "")
        part: dict[str, Any] = {"functionCall": {"name": fn.get("name"), "args": args}}
        _, sep, signature = call_id.partition(SIGNATURE_SEP)
        if sep and signature:
            part["thoughtSignature"] = signature  # Gemini 3 rejects a replayed call without it
        parts.append(part)
    return parts


def _tool_response(m: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = names.get(str(m.get("tool_call_id") or "")) or m.get("name")
    if not name:
        call_id = quote(m.get("tool_call_id"))
        raise bad_request(f"tool message {call_id} answers no earlier assistant tool call")
    content = m.get("content")
    text = content if isinstance(content, str) else messages_text([m])
    return {"functionResponse": {"name": name, "response": {"output": text}}}


# -- response -----------------------------------------------------------------------------------------


def tool_call_id(n: int, signature: Any) -> str:
    """Gemini gives calls no id; carry its thought signature inside the id so a replay can return it."""
    return f"call_{n}{SIGNATURE_SEP}{signature}" if signature else f"call_{n}"


def split_parts(parts: Any, first_call: int = 0) -> tuple[str, str, list[dict[str, Any]]]:
    """(answer text, thought text, OpenAI tool calls) of a candidate's parts."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            fc = part["functionCall"]
            args = orjson.dumps(fc.get("args") or {}).decode()
            calls.append(
                {
                    "id": tool_call_id(first_call + len(calls), part.get("thoughtSignature")),
                    "type": "function",
                    "function": {"name": fc.get("name"), "arguments": args},
                }
            )
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    return "".join(texts), "".join(thoughts), calls


def finish_reason(reason: Any, has_calls: bool) -> str:
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if mapped == "stop" and has_calls else mapped


def usage_from(meta: Any) -> Usage | None:
    """promptTokenCount already includes cached tokens; thinking tokens are billed as output."""
    if not isinstance(meta, dict) or not meta:
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def usage_dict(meta: Any, body: dict[str, Any], output_text: str) -> dict[str, Any]:
    usage = usage_from(meta)
    if usage is not None:
        return usage.to_openai()
    est = Usage(
        prompt_tokens=estimate_tokens(messages_text(body.get("messages"))),
        completion_tokens=estimate_tokens(output_text),
        estimated=True,
    )
    return {**est.to_openai(), "estimated": True}


def to_openai(data: dict[str, Any], body: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    output: list[str] = []
    for pos, cand in enumerate(data.get("candidates") or ()):
        text, thoughts, calls = split_parts((cand.get("content") or {}).get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        if thoughts:
            message["reasoning_content"] = thoughts
        reason = finish_reason(cand.get("finishReason"), bool(calls))
        index = cand.get("index")
        index = index if isinstance(index, int) else pos
        choices.append({"index": index, "message": message, "finish_reason": reason, "logprobs": None})
        output.extend([text, *(c["function"]["arguments"] for c in calls)])
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason): no candidates at all
        message = {"role": "assistant", "content": None, "refusal": None}
        choices.append({"index": 0, "message": message, "finish_reason": "content_filter", "logprobs": None})
    return {
        "id": f"chatcmpl-{data.get('responseId') or created}",
        "object": "chat.completion",
        "created": created,
        "model": data.get("modelVersion") or model,
        "choices": choices,
        "usage": usage_dict(data.get("usageMetadata"), body, "".join(output)),
    }
