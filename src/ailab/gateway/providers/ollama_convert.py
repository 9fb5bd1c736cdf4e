"""OpenAI chat/embeddings bodies ↔ Ollama's native /api/chat and /api/embed wire format.

Pure functions, no I/O: the adapter in ollama.py does the HTTP. Ollama differs from OpenAI in ways that
matter here: images are bare base64 strings on the message, tool-call arguments are JSON objects (not
strings) and carry no ids, tool results name the tool (`tool_name`) instead of a call id, sampling
parameters live under `options`, and `stream` defaults to true.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from ailab.gateway.errors import quote
from ailab.gateway.types import UpstreamError, Usage

# Ollama runtime options a LiteLLM user may pass as top-level extra params; forwarded into `options`.
PASSTHROUGH_OPTIONS = frozenset(
    {
        "num_ctx",
        "num_keep",
        "num_gpu",
        "num_thread",
        "top_k",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "repeat_last_n",
        "mirostat",
        "mirostat_eta",
        "mirostat_tau",
        "num_batch",
    }
)
# OpenAI name → Ollama option name.
OPTION_MAP = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def bad_request(message: str) -> UpstreamError:
    return UpstreamError(f"ollama: {message}", kind="http", status=400)


# -- request: chat ----------------------------------------------------------------------------------------


def chat_payload(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """The /api/chat request for an OpenAI chat body; raises a 400 UpstreamError for what Ollama can't do."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("parameter `n` > 1 is not supported (Ollama returns one choice)")
    payload: dict[str, Any] = {
        "model": model,
        "messages": convert_messages(body.get("messages") or []),
        "stream": stream,  # Ollama streams by default: always say which one we want
    }
    tools = convert_tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        payload["tools"] = tools
    fmt = response_format(body.get("response_format"))
    if fmt is not None:
        payload["format"] = fmt
    options = chat_options(body)
    if options:
        payload["options"] = options
    think = think_value(body.get("reasoning_effort"), model)
    if think is not None:
        payload["think"] = think
    if body.get("keep_alive") is not None:
        payload["keep_alive"] = body["keep_alive"]
    if body.get("logprobs"):
        payload["logprobs"] = True
        if body.get("top_logprobs"):
            payload["top_logprobs"] = int(body["top_logprobs"])
    return payload


def chat_options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = dict(body.get("options") or {})
    for src, dst in OPTION_MAP.items():
        if body.get(src) is not None:
            options[dst] = body[src]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        options["num_predict"] = int(limit)
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    for key in PASSTHROUGH_OPTIONS & body.keys():
        options[key] = body[key]
    return options


def think_value(effort: Any, model: str) -> bool | str | None:
    """reasoning_effort → `think`: gpt-oss takes a level, other thinking models only on/off."""
    if effort is None:
        return None
    if effort == "none":
        return False
    if "gpt-oss" in model and effort in ("low", "medium", "high"):
        return str(effort)
    return True


def response_format(fmt: Any) -> str | dict[str, Any] | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return "json"
    if fmt["type"] == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise bad_request("response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise bad_request(f"response_format type {quote(fmt['type'])} is not supported")


def convert_tools(tools: Any, choice: Any) -> list[dict[str, Any]]:
    """OpenAI function tools pass as they are; Ollama has no tool_choice: approximate it with the list."""
    if not tools or choice == "none":
        return []
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise bad_request(f"tools[{i}]: only function tools are supported")
        out.append({"type": "function", "function": tool.get("function") or {}})
    if isinstance(choice, dict):
        # A named tool: offer only that one, the closest Ollama gets to forcing it.
        name = (choice.get("function") or {}).get("name")
        out = [t for t in out if t["function"].get("name") == name]
        if not out:
            raise bad_request(f"tool_choice names {quote(name)}, which is not in tools")
    return out


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, for tool results' tool_name
    for i, m in enumerate(messages):
        role = m.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(m.get("content"), f"messages[{i}]")})
        elif role == "user":
            out.append(user_message(m.get("content"), i))
        elif role == "assistant":
            out.append(assistant_message(m, i, call_names))
        elif role in ("tool", "function"):
            name = m.get("name") or call_names.get(str(m.get("tool_call_id")), "")
            msg: dict[str, Any] = {"role": "tool", "content": text_of(m.get("content"), f"messages[{i}]")}
            if name:
                msg["tool_name"] = name
            out.append(msg)
        else:
            raise bad_request(f"messages[{i}].role {quote(role)} is not supported")
    return out


def text_of(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise bad_request(f"{where}.content[{j}]: part type {quote(kind)} is not supported here")
        parts.append(str(part.get("text") or ""))
    return "\n".join(parts)


def user_message(content: Any, i: int) -> dict[str, Any]:
    if content is None or isinstance(content, str):
        return {"role": "user", "content": content or ""}
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            images.append(image_data(part.get("image_url"), f"messages[{i}].content[{j}].image_url"))
        else:
            raise bad_request(f"messages[{i}].content[{j}]: part type {quote(kind)} is not supported")
    msg: dict[str, Any] = {"role": "user", "content": "\n".join(texts)}
    if images:
        msg["images"] = images
    return msg


def image_data(image: Any, where: str) -> str:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request(f"{where}: missing url")
    if not url.startswith("data:"):
        # Ollama takes only inline bytes; fetching URLs here would make the gateway an open proxy.
        raise bad_request(f"{where}: Ollama accepts only base64 data: URLs, not remote image URLs")
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise bad_request(f"{where}: data: URL must be base64-encoded")
    return data


def assistant_message(m: dict[str, Any], i: int, call_names: dict[str, str]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": text_of(m.get("content"), f"messages[{i}]")}
    thinking = m.get("reasoning_content") or m.get("thinking")
    if isinstance(thinking, str) and thinking:
        msg["thinking"] = thinking
    calls = []
    for j, call in enumerate(m.get("tool_calls") or ()):
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        call_names[str(call.get("id"))] = name
        calls.append({"function": {"name": name, "arguments": tool_arguments(fn.get("arguments"), i, j)}})
    if calls:
        msg["tool_calls"] = calls
    return msg


def tool_arguments(raw: Any, i: int, j: int) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        args = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        args = None
    if not isinstance(args, dict):
        raise bad_request(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object")
    return args


# -- response: chat ---------------------------------------------------------------------------------------


def tool_calls_out(calls: Any, start: int = 0) -> list[dict[str, Any]]:
    """Ollama tool calls → OpenAI's: generated ids, arguments as a JSON string."""
    out = []
    for k, call in enumerate(calls or (), start=start):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        arguments = args if isinstance(args, str) else orjson.dumps(args or {}).decode()
        out.append(
            {
                "id": call.get("id") or f"call_{k}",
                "type": "function",
                "function": {"name": fn.get("name") or "", "arguments": arguments},
            }
        )
    return out


def finish_reason(done_reason: Any, saw_tool_calls: bool) -> str:
    if saw_tool_calls:
        return "tool_calls"  # Ollama says "stop" after a tool call; OpenAI clients look for this
    return "length" if done_reason == "length" else "stop"


def chat_usage(data: dict[str, Any], prompt_estimate: int, completion_estimate: int) -> dict[str, Any]:
    """Ollama omits prompt_eval_count when the whole prompt came from its cache: estimate, and say so."""
    prompt = data.get("prompt_eval_count")
    completion = data.get("eval_count")
    usage = Usage(
        prompt_tokens=int(prompt) if isinstance(prompt, int) else prompt_estimate,
        completion_tokens=int(completion) if isinstance(completion, int) else completion_estimate,
        estimated=not (isinstance(prompt, int) and isinstance(completion, int)),
    )
    out = usage.to_openai()
    if usage.estimated:
        out["estimated"] = True
    return out


def logprobs_out(items: Any) -> dict[str, Any] | None:
    """Ollama's logprobs entries already use OpenAI's field names ({token, logprob, bytes, top_logprobs})."""
    if not isinstance(items, list):
        return None
    return {"content": [_logprob(x) for x in items if isinstance(x, dict)], "refusal": None}


def _logprob(item: dict[str, Any]) -> dict[str, Any]:
    # OpenAI's ChatCompletionTokenLogprob requires bytes (nullable) and top_logprobs (an array).
    top = item.get("top_logprobs")
    out = {**item, "bytes": item.get("bytes"), "top_logprobs": top if isinstance(top, list) else []}
    if isinstance(top, list):
        out["top_logprobs"] = [{**t, "bytes": t.get("bytes")} for t in top if isinstance(t, dict)]
    return out


# -- embeddings -------------------------------------------------------------------------------------------


def embed_payload(body: dict[str, Any], model: str) -> dict[str, Any]:
    inputs = body.get("input")
    ok = isinstance(inputs, str) or (
        isinstance(inputs, list) and bool(inputs) and all(isinstance(t, str) for t in inputs)
    )
    if not ok:
        raise bad_request(
            "embeddings `input` must be a string or a non-empty list of strings (no token arrays)"
        )
    payload: dict[str, Any] = {"model": model, "input": inputs}
    if body.get("dimensions") is not None:
        payload["dimensions"] = int(body["dimensions"])
    for key in ("truncate", "keep_alive", "options"):
        if body.get(key) is not None:
            payload[key] = body[key]
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise bad_request(f"encoding_format {quote(fmt)} is not supported")
    return payload


def encode_vector(vector: list[float], fmt: Any) -> list[float] | str:
    if fmt != "base64":
        return vector
    # OpenAI's base64 format: little-endian float32, what the openai SDK asks for by default.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
