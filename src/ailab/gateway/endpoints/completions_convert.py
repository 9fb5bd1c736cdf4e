"""Legacy completions: validation by OpenAI's CreateCompletionRequest, and the translation to and from chat
completions for providers that only speak chat."""

from __future__ import annotations

import time
from typing import Any

from ailab.gateway.errors import bad_param
from ailab.gateway.validate import (
    _boolean,
    _fallbacks,
    _int_between,
    _logit_bias,
    _model,
    _number_between,
    _stop,
    _string,
)
from ailab.gateway.validate_fields import stream_options

MAX_PROMPTS = 2048
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions

FIELDS = {
    "stream": _boolean,
    "echo": _boolean,
    "max_tokens": _int_between(0, None),
    "n": _int_between(1, 128),
    "best_of": _int_between(0, 20),
    "logprobs": _int_between(0, 5),
    "temperature": _number_between(0, 2),
    "top_p": _number_between(0, 1),
    "presence_penalty": _number_between(-2, 2),
    "frequency_penalty": _number_between(-2, 2),
    "seed": _int_between(None, None),
    "stop": _stop,
    "suffix": _string,
    "user": _string,
    "logit_bias": _logit_bias,
    "stream_options": stream_options,
    "fallbacks": _fallbacks,
}
# Passed to a chat-only provider as they are (the rest has no chat meaning, or is handled here).
CHAT_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop", "user", "n")


def validate_completions(body: dict[str, Any]) -> None:
    _model(body)
    _prompt(body.get("prompt"))
    for key, value in body.items():
        check = FIELDS.get(key)
        if check is not None and value is not None:
            check(key, value)
    if body.get("stream_options") is not None and not body.get("stream"):
        raise bad_param("stream_options", "is only allowed when stream is true")
    if body.get("stream") and len(prompts(body)) > 1:
        raise bad_param("prompt", "streaming takes one prompt (send the others in their own requests)")


def _prompt(p: Any) -> None:
    if isinstance(p, str):
        return
    if isinstance(p, list) and 0 < len(p) <= MAX_PROMPTS:
        if all(isinstance(x, str) for x in p):
            return
        if all(isinstance(x, int) and not isinstance(x, bool) for x in p):
            return  # one prompt as token ids (passed through to OpenAI-compatible upstreams)
        if all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in p):
            return
    raise bad_param(
        "prompt", f"is required: a string, an array of up to {MAX_PROMPTS} strings, or token-id arrays"
    )


def prompts(body: dict[str, Any]) -> list[str]:
    """The prompts as text (token-id prompts become their ids as text: only an estimate, or for a chat
    provider that could not read them anyway)."""
    p = body.get("prompt")
    if isinstance(p, str):
        return [p]
    if isinstance(p, list) and p and all(isinstance(x, int) for x in p):
        return [" ".join(str(x) for x in p)]
    if isinstance(p, list):
        return [x if isinstance(x, str) else " ".join(str(t) for t in x) for x in p] or [""]
    return [""]


def prompt_text(body: dict[str, Any]) -> str:
    return " ".join(prompts(body))


def chat_body(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    """One prompt as a chat request (the legacy default of 16 max tokens kept)."""
    out: dict[str, Any] = {
        "model": body["model"],
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": body.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    for name in CHAT_PARAMS:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _finish(reason: Any) -> str | None:
    if reason is None:
        return None
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def from_chat(body: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat answers (one per prompt) as one text_completion; choice i*n+j is prompt i's j-th choice."""
    choices: list[dict[str, Any]] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    estimated = False
    for prompt, result in zip(prompts(body), results, strict=True):
        for choice in result.get("choices") or ():
            text = str((choice.get("message") or {}).get("content") or "")
            choices.append(
                {
                    "text": prompt + text if body.get("echo") else text,
                    "index": len(choices),
                    "logprobs": None,
                    "finish_reason": _finish(choice.get("finish_reason")) or "stop",
                }
            )
        u = result.get("usage") or {}
        for k in usage:
            usage[k] += int(u.get(k) or 0)
        estimated = estimated or bool(u.get("estimated"))
    first = results[0] if results else {}
    out: dict[str, Any] = {
        "id": f"cmpl-{str(first.get('id') or time.time_ns()).removeprefix('chatcmpl-')}",
        "object": "text_completion",
        "created": int(first.get("created") or time.time()),
        "model": str(first.get("model") or body["model"]),
        "choices": choices,
        "usage": {**usage, "estimated": True} if estimated else usage,
    }
    return out


def from_chat_chunk(chunk: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion.chunk as a text_completion chunk (the usage chunk keeps its usage)."""
    out: dict[str, Any] = {
        "id": f"cmpl-{str(chunk.get('id') or '').removeprefix('chatcmpl-')}",
        "object": "text_completion",
        "created": int(chunk.get("created") or time.time()),
        "model": str(chunk.get("model") or body["model"]),
        "choices": [
            {
                "text": str((c.get("delta") or {}).get("content") or ""),
                "index": int(c.get("index") or 0),
                "logprobs": None,
                "finish_reason": _finish(c.get("finish_reason")),
            }
            for c in chunk.get("choices") or ()
            if isinstance(c, dict)
        ],
    }
    if "usage" in chunk:
        out["usage"] = chunk["usage"]
    return out
