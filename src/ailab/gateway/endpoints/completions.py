"""POST /v1/completions (OpenAI's legacy text completions): passed through to OpenAI-compatible upstreams,
translated to chat completions for chat-only providers (Anthropic, Gemini, Ollama chat); streaming too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Endpoint
from ailab.gateway.endpoints.completions_convert import (
    DEFAULT_MAX_TOKENS,
    chat_body,
    from_chat,
    from_chat_chunk,
    prompt_text,
    prompts,
    validate_completions,
)
from ailab.gateway.endpoints.native import native_json, native_payload, native_url, speaks_openai
from ailab.gateway.providers.base import Provider, estimate_tokens, loads_event
from ailab.gateway.streaming import Seen, StreamShape
from ailab.gateway.types import StreamItem, UpstreamError, Usage
from ailab.ledger import ENDPOINT_COMPLETIONS


class CompletionsStream(StreamShape):
    """Legacy completion chunks (`object: text_completion`): native ones as they came, chat chunks of a
    translated stream turned into them; usage shown only with `stream_options.include_usage`."""

    def chunk(self, chunk: dict[str, Any], seen: Seen) -> bytes | None:
        if chunk.get("object") != "text_completion":
            chunk = from_chat_chunk(chunk, self.ctx.body)
        if "usage" in chunk and not self.include_usage:
            if not chunk.get("choices"):
                return None
            del chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("text"):
                seen.text.append(choice["text"])
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def estimate(self, seen: Seen) -> Usage:
        return Usage(
            prompt_tokens=estimate_tokens(prompt_text(self.ctx.body)),
            completion_tokens=estimate_tokens("".join(seen.text)),
            estimated=True,
        )


class Completions(Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/completions"),)
    endpoint_id = ENDPOINT_COMPLETIONS
    stream_shape = CompletionsStream

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        validate_completions(body)
        ctx.body = body
        ctx.stream = bool(body.get("stream"))
        model: str = body["model"]
        return model

    def estimate(self, ctx: RequestContext) -> tuple[int, int]:
        body = ctx.body
        n = int(body.get("n") or 1) * len(prompts(body))
        return estimate_tokens(prompt_text(body)), int(body.get("max_tokens") or DEFAULT_MAX_TOKENS) * n

    async def call(self, provider: Provider, ctx: RequestContext) -> dict[str, Any]:
        body = ctx.body
        if speaks_openai(provider):
            data = await native_json(provider, "completions", body)
            if not isinstance(data.get("usage"), dict):
                data["usage"] = _estimate(body, data)
            return data
        results = [await provider.chat(chat_body(body, p)) for p in prompts(body)]
        return from_chat(body, results)

    def open(self, provider: Provider, ctx: RequestContext) -> AsyncIterator[StreamItem]:
        if speaks_openai(provider):
            return _native_stream(provider, ctx.body)
        return provider.chat_stream(chat_body(ctx.body, prompts(ctx.body)[0]))


async def _native_stream(provider: Provider, body: dict[str, Any]) -> AsyncIterator[StreamItem]:
    """An OpenAI-compatible upstream's completion stream as parsed chunks (legacy traffic is light; parsing
    keeps usage, cut detection and the client's include_usage choice simple). A body that ends without
    `[DONE]` before any choice finished is a cut stream, an error."""
    opts = {**(body.get("stream_options") or {}), "include_usage": True}
    payload = {**native_payload(provider, body), "stream": True, "stream_options": opts}
    url, label = native_url(provider, "completions"), provider.label
    saw_usage = finished = False
    texts: list[str] = []
    async for batch in provider.sse_batches(url, payload, provider.headers()):
        if not batch and not finished:
            raise UpstreamError(f"{label} upstream stream ended before a finish_reason", kind="connection")
        for data in batch:
            chunk = loads_event(data, label)
            if "error" in chunk and "choices" not in chunk:
                raise UpstreamError(f"{label} upstream stream error: {str(chunk['error'])[:300]}")
            if chunk.get("usage") is None:
                chunk.pop("usage", None)
            saw_usage = saw_usage or isinstance(chunk.get("usage"), dict)
            for choice in chunk.get("choices") or ():
                finished = finished or bool(choice.get("finish_reason"))
                texts.append(str(choice.get("text") or ""))
            yield chunk
    if not saw_usage:
        usage = _estimate(body, {"choices": [{"text": "".join(texts)}]})
        yield {"object": "text_completion", "choices": [], "usage": usage, "model": body.get("model")}


def _estimate(body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    out = " ".join(str(c.get("text") or "") for c in data.get("choices") or () if isinstance(c, dict))
    usage = Usage(
        prompt_tokens=estimate_tokens(prompt_text(body)),
        completion_tokens=estimate_tokens(out),
        estimated=True,
    )
    return {**usage.to_openai(), "estimated": True}
