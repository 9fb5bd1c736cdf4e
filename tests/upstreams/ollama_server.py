"""A fake Ollama (native API): /api/chat incl. NDJSON streaming and tools, /api/embed, /api/tags.

Deterministic: the reply is `echo: <last user text>` (or `tool said: <result>` after a tool message, or a call
to the first tool with {"city": "Paris"} when tools are given and the user spoke last). Token counts:
prompt_eval_count = words of all messages + 4 per message, eval_count = words of the reply + 2 (+6 per tool
call). With `think` set the message also carries `thinking`, counted in eval_count as Ollama does. Like
Ollama after a full prompt-cache hit, prompt_eval_count is omitted when the messages equal the previous
request's. `options.num_predict` truncates the reply to that many words with done_reason "length".
`format` makes the reply `{"echo": "<text>"}`. Ollama has no auth; with `up.api_key` set (hosted Ollama) a
Bearer token is required. A fault with a `body` and no status becomes a mid-stream `{"error": ...}` line
after `cut_after` records (0 if unset).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstreams.harness import Fault, StreamCut, Upstream, apply_fault

MODELS = ("llama3.2:latest", "qwen3:8b", "nomic-embed-text:latest")
THINKING = "the user wants an echo"  # the reasoning text when the request sets `think`
DURATIONS = {
    "total_duration": 5_043_500_667,
    "load_duration": 5_025_959,
    "prompt_eval_duration": 325_953_000,
    "eval_duration": 4_709_213_000,
}


def ollama_error(status: int, message: str | None = None) -> dict[str, Any]:
    return {
        "error": message or {401: "unauthorized", 429: "too many requests"}.get(status, "upstream failure")
    }


def known(model: str) -> bool:
    return (model if ":" in model else f"{model}:latest") in MODELS


def reply_for(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if body.get("tools") and last.get("role") == "user":
        name = body["tools"][0]["function"]["name"]
        return "", [{"function": {"name": name, "arguments": {"city": "Paris"}}}]
    prefix = "tool said:" if last.get("role") == "tool" else "echo:"
    text = f"{prefix} {last.get('content') or ''}".strip()
    if body.get("format"):
        text = json.dumps({"echo": text})
    return text, []


def counts(body: dict[str, Any], text: str, calls: list[dict[str, Any]]) -> tuple[int, int]:
    prompt = sum(len(str(m.get("content") or "").split()) + 4 for m in body.get("messages") or [])
    return prompt, len(text.split()) + 2 + 6 * len(calls)


def make_app(up: Upstream) -> Starlette:
    state: dict[str, Any] = {"last_messages": None}

    def unauthorized(request: Request) -> Response | None:
        if up.api_key and request.headers.get("authorization") != f"Bearer {up.api_key}":
            return JSONResponse(ollama_error(401), status_code=401)
        return None

    def invalid(body: dict[str, Any]) -> Response | None:
        if not known(str(body.get("model"))):
            msg = f'model "{body.get("model")}" not found, try pulling it first'
            return JSONResponse(ollama_error(404, msg), status_code=404)
        for m in body.get("messages") or []:
            for img in m.get("images") or []:
                if img.startswith("data:") or img.startswith("http"):
                    return JSONResponse(
                        ollama_error(400, "illegal base64 data at input byte 4"), status_code=400
                    )
        return None

    async def chat(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        fault = up.next_fault()
        if (resp := await apply_fault(fault, ollama_error)) is not None:
            return resp
        body = entry["body"]
        if (resp := invalid(body)) is not None:
            return resp
        text, calls = reply_for(body)
        done_reason = "stop"
        limit = (body.get("options") or {}).get("num_predict")
        if limit is not None and not calls and len(text.split()) > limit:
            text, done_reason = " ".join(text.split()[:limit]), "length"
        prompt, completion = counts(body, text, calls)
        thinking = THINKING if body.get("think") else ""
        completion += len(thinking.split())
        final: dict[str, Any] = {
            "done": True,
            "done_reason": done_reason,
            **DURATIONS,
            "eval_count": completion,
        }
        if body["messages"] != state["last_messages"]:
            final["prompt_eval_count"] = prompt
        state["last_messages"] = body["messages"]
        if body.get("stream", True):  # Ollama's default is to stream
            stream = _stream(body["model"], text, calls, final, fault, thinking)
            return StreamingResponse(stream, media_type="application/x-ndjson")
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["thinking"] = thinking
        out = {"model": body["model"], "created_at": _now(), "message": message, **final}
        if body.get("logprobs"):
            # Ollama >= 0.12: one entry per token, top_logprobs only when asked for
            out["logprobs"] = [_logprob(w, body.get("top_logprobs")) for w in text.split()]
        return JSONResponse(out)

    def _logprob(token: str, top: int | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"token": token, "logprob": -0.25, "bytes": list(token.encode())}
        if top:
            entry["top_logprobs"] = [{"token": token, "logprob": -0.25, "bytes": list(token.encode())}]
        return entry

    async def _stream(
        model: str,
        text: str,
        calls: list[dict[str, Any]],
        final: dict[str, Any],
        fault: Fault | None,
        thinking: str,
    ) -> AsyncIterator[bytes]:
        words = text.split(" ") if text else []
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": thinking} for _ in range(1 if thinking else 0)
        ]
        messages += [{"role": "assistant", "content": (" " if i else "") + w} for i, w in enumerate(words)]
        if calls:
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        records = [{"model": model, "created_at": _now(), "message": m, "done": False} for m in messages]
        records.append(
            {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}, **final}
        )
        cut = fault.cut_after if fault else None
        for sent, record in enumerate(records):
            if fault and fault.body and fault.status is None and sent >= (cut or 0):
                yield (json.dumps(fault.body) + "\n").encode()
                return
            if cut is not None and sent >= cut:
                raise StreamCut()
            yield (json.dumps(record) + "\n").encode()

    async def embed(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        if (resp := await apply_fault(up.next_fault(), ollama_error)) is not None:
            return resp
        body = entry["body"]
        if (resp := invalid(body)) is not None:
            return resp
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = int(body.get("dimensions") or 8)
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [fake_vector(str(t), dim) for t in inputs],
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": sum(len(str(t).split()) + 1 for t in inputs),
            }
        )

    async def tags(request: Request) -> Response:
        await up.record(request)
        return JSONResponse(
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                        "size": 2019393189,
                        "digest": hashlib.sha256(name.encode()).hexdigest(),
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "3.2B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                    for name in MODELS
                ]
            }
        )

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/embed", embed, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
        ]
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def fake_vector(text: str, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * (dim // 32 + 1)
    return [round((b - 128) / 128, 4) for b in digest[:dim]]
