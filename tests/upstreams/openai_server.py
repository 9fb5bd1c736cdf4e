"""A fake OpenAI API (chat completions incl. SSE streaming and tools, the Responses API, embeddings, models).

Deterministic: the reply is `echo: <last message text>`; prompt tokens are the words of all messages plus
3 per message; completion tokens are the words of the reply. Usage follows OpenAI's documented fields, with
its details: a first message of 1,024 tokens or more is cached after its first sight (in steps of 128, as
OpenAI's prompt caching does), reasoning models (o-series, gpt-5) think 8 tokens, an `input_audio` part
counts 20 audio tokens and `modalities: ["text", "audio"]` answers with 4 audio tokens per reply word.
A json_schema response format whose schema has an `echo` property gets `{"echo": "<reply>"}`.
`/v1/responses` (and Azure's `/openai/responses`): see `responses_server`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstreams import openai_extra, responses_server
from tests.upstreams.harness import Fault, StreamCut, Upstream, apply_fault


def openai_error(status: int, message: str = "upstream failure") -> dict[str, Any]:
    kinds = {401: "invalid_request_error", 429: "rate_limit_error", 400: "invalid_request_error"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "code": None}}


def message_text(m: dict[str, Any]) -> str:
    c = m.get("content")
    if isinstance(c, list):
        return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


def count_prompt(messages: list[dict[str, Any]]) -> int:
    return sum(len(message_text(m).split()) + 3 for m in messages)


REASONING = ("o1", "o3", "o4", "gpt-5")


def chat_usage(body: dict[str, Any], text: str | None, tool_calls: Any, cache: set[str]) -> dict[str, Any]:
    messages = body["messages"]
    audio_in = 20 * sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "input_audio"
    )
    prompt = count_prompt(messages) + audio_in
    first = count_prompt(messages[:1])
    key = hashlib.sha256(json.dumps(messages[:1], sort_keys=True).encode()).hexdigest()
    cached = first // 128 * 128 if first >= 1024 and key in cache else 0
    if first >= 1024:
        cache.add(key)
    reasoning = 8 if str(body["model"]).startswith(REASONING) else 0
    audio_out = 4 * len((text or "").split()) if "audio" in (body.get("modalities") or ()) else 0
    completion = len((text or "").split()) + (5 if tool_calls else 0) + reasoning + audio_out
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio_in},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": audio_out,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def reply_for(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tools = body.get("tools")
    if tools and last.get("role") == "user" and body.get("tool_choice") != "none":
        fn = tools[0]["function"]["name"]
        return None, [
            {"id": "call_1", "type": "function", "function": {"name": fn, "arguments": '{"city": "Paris"}'}}
        ]
    prefix = "tool said:" if last.get("role") == "tool" else "echo:"
    text = f"{prefix} {message_text(last)}".strip()
    fmt = body.get("response_format") or {}
    if "echo" in (((fmt.get("json_schema") or {}).get("schema") or {}).get("properties") or {}):
        text = json.dumps({"echo": text})  # structured output, for a schema that asks for `echo`
    return text, None


def make_app(up: Upstream) -> Starlette:
    prompt_cache: set[str] = set()

    def unauthorized(request: Request) -> Response | None:
        # Azure OpenAI sends `api-key`; everything else a Bearer token.
        azure = request.url.path.startswith("/openai/")
        if azure and up.api_key and request.headers.get("api-key") == up.api_key:
            return None
        if up.api_key and request.headers.get("authorization") != f"Bearer {up.api_key}":
            return JSONResponse(openai_error(401, "Incorrect API key provided"), status_code=401)
        return None

    async def chat(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        fault = up.next_fault()
        if (resp := await apply_fault(fault, openai_error)) is not None:
            return resp
        body = entry["body"]
        text, tool_calls = reply_for(body)
        usage = chat_usage(body, text, tool_calls, prompt_cache)
        if body.get("stream"):
            return StreamingResponse(
                _stream(body, text, tool_calls, usage, fault or Fault()), media_type="text/event-stream"
            )
        n = int(body.get("n") or 1)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = "tool_calls" if tool_calls else "stop"
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": i,
                        "message": message,
                        "finish_reason": finish,
                        "logprobs": _logprobs(body, text),
                    }
                    for i in range(n)
                ],
                "usage": usage,
            }
        )

    async def _stream(
        body: dict[str, Any], text: str | None, tool_calls: Any, usage: dict[str, Any], fault: Fault
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for event in _events(body, text, tool_calls, usage, fault):
                yield event
            finished = True
        finally:
            if not finished:  # cancelled or closed: the gateway hung up before the end
                with up.lock:
                    up.streams_closed_early += 1

    async def _events(
        body: dict[str, Any], text: str | None, tool_calls: Any, usage: dict[str, Any], fault: Fault
    ) -> AsyncIterator[bytes]:
        cut = fault.cut_after
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if tool_calls:
            tc = tool_calls[0]
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": tc["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            deltas.append(
                {"tool_calls": [{"index": 0, "function": {"arguments": tc["function"]["arguments"]}}]}
            )
        else:
            words = (text or "").split(" ")
            deltas.extend({"content": (" " if i else "") + w} for i, w in enumerate(words))
        events = [{"index": 0, "delta": d, "finish_reason": None, "logprobs": None} for d in deltas]
        events.append(
            {
                "index": 0,
                "delta": {},
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        )
        for sent, choice in enumerate(events):
            if cut is not None and sent >= cut:
                raise StreamCut()
            if fault.end_after is not None and sent >= fault.end_after:
                return
            if sent and fault.event_delay:
                await asyncio.sleep(fault.event_delay)
            with up.lock:
                up.events_sent += 1
            chunk = {**base, "choices": [choice]}
            if include:
                chunk["usage"] = None
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        if include:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"

    async def embeddings(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        if (resp := await apply_fault(up.next_fault(), openai_error)) is not None:
            return resp
        body = entry["body"]
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        b64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(t), b64=b64)}
            for i, t in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> Response:
        await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        return JSONResponse(
            {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "x"}]}
        )

    async def responses(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        fault = up.next_fault()
        if (resp := await apply_fault(fault, openai_error)) is not None:
            return resp
        body = entry["body"]
        if body.get("stream"):
            events = responses_server.stream_events(body, fault or Fault())
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(responses_server.respond(body))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/openai/responses", responses, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
            *openai_extra.routes(up, unauthorized, openai_error),  # legacy completions, rerank
        ]
    )


def fake_vector(text: str, dim: int = 8, b64: bool = False) -> Any:
    digest = hashlib.sha256(text.encode()).digest()
    vector = [round((b - 128) / 128, 4) for b in digest[:dim]]
    if b64:  # OpenAI's base64 format: little-endian float32
        return base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
    return vector


def _logprobs(body: dict[str, Any], text: str | None) -> dict[str, Any] | None:
    if not body.get("logprobs"):
        return None
    top = int(body.get("top_logprobs") or 0)

    def entry(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -0.5, "bytes": list(token.encode())}

    content = [{**entry(w), "top_logprobs": [entry(w)] * top} for w in (text or "").split()]
    return {"content": content, "refusal": None}
