"""Ollama's native API (LiteLLM's `ollama/` and `ollama_chat/` prefixes): /api/chat, /api/embed, /api/tags.

Streams are NDJSON (one JSON object a line, no SSE) ending with a `done: true` record that carries the
token counts; errors mid-stream arrive as a `{"error": "..."}` line. Ollama itself has no auth; an api_key
is sent as a Bearer token for hosted Ollama (ollama.com) or a reverse proxy in front of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ailab.gateway.ids import random_hex
from ailab.gateway.providers import ollama_convert as conv
from ailab.gateway.providers.base import (
    Provider,
    estimate_tokens,
    loads_event,
    messages_text,
    now_ts,
    usage_chunk,
)
from ailab.gateway.providers.registry import Alias, ProviderRegistry
from ailab.gateway.types import UpstreamError


class OllamaProvider(Provider):
    name = "ollama"
    default_api_base = "http://127.0.0.1:11434"

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if self.deployment.api_key:
            h["Authorization"] = f"Bearer {self.deployment.api_key}"
        return h

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = conv.chat_payload(body, self.deployment.model, stream=False)
        data = await self.post_json(f"{self.api_base}/api/chat", payload, self.headers())
        if "error" in data:
            raise self._body_error(data["error"])
        msg = data.get("message") or {}
        text = str(msg.get("content") or "")
        calls = conv.tool_calls_out(msg.get("tool_calls"))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        if msg.get("thinking"):
            message["reasoning_content"] = msg["thinking"]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": conv.finish_reason(data.get("done_reason"), bool(calls)),
            "logprobs": conv.logprobs_out(data.get("logprobs")),
        }
        out_text = text + str(msg.get("thinking") or "") + "".join(c["function"]["arguments"] for c in calls)
        return {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": now_ts(),
            "model": data.get("model") or self.deployment.model,
            "choices": [choice],
            "usage": conv.chat_usage(data, self._prompt_estimate(body), estimate_tokens(out_text)),
        }

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = conv.chat_payload(body, self.deployment.model, stream=True)
        state = _StreamState(_completion_id(), now_ts(), self.deployment.model)
        async for line in self.stream_lines(f"{self.api_base}/api/chat", payload, self.headers()):
            event = loads_event(line, self.label)
            if "error" in event:
                raise self._body_error(event["error"])
            if not state.started:
                # Only once Ollama has answered, so that failures before any output stay retryable.
                state.started = True
                yield state.chunk({"role": "assistant", "content": ""})
            for chunk in state.feed(event):
                yield chunk
            if event.get("done"):
                yield state.usage_chunk(event, self._prompt_estimate(body))
                return
        # The body ended cleanly but without the `done` record that carries finish reason and usage.
        raise UpstreamError(f"{self.label} upstream stream ended before done", kind="connection")

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = conv.embed_payload(body, self.deployment.model)
        data = await self.post_json(f"{self.api_base}/api/embed", payload, self.headers())
        vectors = data.get("embeddings")
        if not isinstance(vectors, list):
            raise UpstreamError(f"{self.label} upstream sent no embeddings", kind="protocol", status=502)
        fmt = body.get("encoding_format")
        items = [
            {"object": "embedding", "index": i, "embedding": conv.encode_vector(v, fmt)}
            for i, v in enumerate(vectors)
        ]
        count = data.get("prompt_eval_count")
        usage: dict[str, Any]
        if isinstance(count, int):
            usage = {"prompt_tokens": count, "total_tokens": count}
        else:
            inputs = payload["input"]
            n = estimate_tokens(inputs if isinstance(inputs, str) else " ".join(inputs))
            usage = {"prompt_tokens": n, "total_tokens": n, "estimated": True}
        return {
            "object": "list",
            "data": items,
            "model": data.get("model") or self.deployment.model,
            "usage": usage,
        }

    def _prompt_estimate(self, body: dict[str, Any]) -> int:
        return estimate_tokens(messages_text(body.get("messages")))

    def _body_error(self, error: Any) -> UpstreamError:
        # Errors inside a 200 reply are the server failing mid-way (runner crash, OOM): treat like a 500.
        message = self.redact(str(error))[:300]
        return UpstreamError(f"{self.label} upstream error: {message}", kind="http", status=500)


class _StreamState:
    """Turns Ollama NDJSON records into OpenAI chunks, remembering what the finish and usage chunks need."""

    def __init__(self, chunk_id: str, created: int, model: str) -> None:
        self.id = chunk_id
        self.created = created
        self.model = model
        self.calls = 0
        self.started = False
        self.text: list[str] = []

    def chunk(self, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if event.get("model"):
            self.model = str(event["model"])
        msg = event.get("message") or {}
        out: list[dict[str, Any]] = []
        logprobs = conv.logprobs_out(event.get("logprobs"))
        if msg.get("thinking"):
            self.text.append(str(msg["thinking"]))
            out.append(self.chunk({"reasoning_content": msg["thinking"]}))
        if msg.get("content") or logprobs:
            self.text.append(str(msg.get("content") or ""))
            out.append(self.chunk({"content": msg.get("content") or ""}, logprobs=logprobs))
        if msg.get("tool_calls"):
            out.append(self.chunk({"tool_calls": self._call_deltas(msg["tool_calls"])}))
        if event.get("done"):
            out.append(self.chunk({}, conv.finish_reason(event.get("done_reason"), self.calls > 0)))
        return out

    def _call_deltas(self, raw: Any) -> list[dict[str, Any]]:
        # Ollama sends each call whole, so one delta carries id, name and the full arguments.
        calls = conv.tool_calls_out(raw, start=self.calls)
        deltas = [{"index": self.calls + k, **call} for k, call in enumerate(calls)]
        self.calls += len(calls)
        self.text.extend(c["function"]["arguments"] for c in calls)
        return deltas

    def usage_chunk(self, event: dict[str, Any], prompt_estimate: int) -> dict[str, Any]:
        usage = conv.chat_usage(event, prompt_estimate, estimate_tokens("".join(self.text)))
        return usage_chunk(self.id, self.created, self.model, usage)


def _completion_id() -> str:
    return f"chatcmpl-{random_hex(12)}"


async def list_models(
    session: aiohttp.ClientSession,
    base_url: str,
    timeout: float = 1.0,  # noqa: ASYNC109 - the probe's budget, handed to aiohttp
) -> list[str] | None:
    """The model names a local Ollama serves (GET /api/tags), or None when nothing Ollama-like answers."""
    url = f"{base_url.rstrip('/')}/api/tags"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                return None
            raw = await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return None
    return [
        str(m.get("name") or m.get("model"))
        for m in models
        if isinstance(m, dict) and (m.get("name") or m.get("model"))
    ]


def register(registry: ProviderRegistry) -> None:
    """The `ollama` entry point: LiteLLM's `ollama/` and `ollama_chat/` prefixes."""
    base = "http://127.0.0.1:11434"
    registry.add(OllamaProvider, ("ollama", Alias("ollama", base)), ("ollama_chat", Alias("ollama", base)))
