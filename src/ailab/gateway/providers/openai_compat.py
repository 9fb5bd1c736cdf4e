"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, LM Studio, Groq, OpenRouter, DeepSeek, Mistral …

Bodies pass through untouched except the model name and `stream_options.include_usage`, which the gateway
always asks for so that the ledger has the upstream's own usage on streams too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from ailab.gateway.providers.base import Provider, estimate_tokens, loads_event, messages_text, now_ts
from ailab.gateway.providers.registry import Alias, ProviderRegistry
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError, Usage


class OpenAIProvider(Provider):
    name = "openai"
    default_api_base: ClassVar[str | None] = "https://api.openai.com/v1"

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if self.deployment.api_key:
            h["Authorization"] = f"Bearer {self.deployment.api_key}"
        return h

    def url(self, endpoint: str) -> str:
        return f"{self.api_base}/{endpoint}"

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = {**body, "model": self.deployment.model}
        data = await self.post_json(self.url("chat/completions"), payload, self.headers())
        for choice in data.get("choices") or ():
            # Fields OpenAI's schema requires (nullable) that some compatible servers leave out.
            if isinstance(choice, dict):
                choice.setdefault("logprobs", None)
                if isinstance(choice.get("message"), dict):
                    choice["message"].setdefault("refusal", None)
        if not isinstance(data.get("usage"), dict):
            data["usage"] = _estimate_chat(body, data)
        return data

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[StreamItem]:
        opts = dict(body.get("stream_options") or {})
        opts["include_usage"] = True
        payload = {**body, "model": self.deployment.model, "stream": True, "stream_options": opts}
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        saw_usage = finished = False
        raw: list[bytes] = []
        async for batch in self.sse_batches(self.url("chat/completions"), payload, self.headers()):
            if not batch and not (finished or _finished(raw)):
                # The body ended without [DONE] before any choice finished: the stream was cut, not done.
                what = f"{self.label} upstream stream ended before a finish_reason"
                raise UpstreamError(what, kind="connection", status=502)
            pending: list[bytes] = []
            for data in batch:
                if b'"usage"' in data and not client_usage:
                    data = strip_null_usage(data)  # we asked for usage, the client did not
                if b'"usage"' in data or (b'"error"' in data and b'"choices"' not in data):
                    chunk = self._parsed(data)
                    if isinstance(chunk.get("usage"), dict):
                        saw_usage = True
                    finished = finished or any(
                        isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ()
                    )
                    if pending:
                        yield RawEvents(None, pending, more=True)
                        pending = []
                    yield chunk
                    continue
                raw.append(data)
                pending.append(data)
            if pending:
                yield RawEvents(None, pending)
        if not saw_usage:
            # Upstream ignored include_usage: close the stream the way OpenAI would, marked as an estimate.
            usage = Usage(
                prompt_tokens=estimate_tokens(messages_text(body.get("messages"))),
                completion_tokens=estimate_tokens(streamed_text(raw)),
                estimated=True,
            )
            yield {
                **_stream_ids(raw, self.deployment.model),
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {**usage.to_openai(), "estimated": True},
            }

    def _parsed(self, data: bytes) -> dict[str, Any]:
        chunk = loads_event(data, self.label)
        if "error" in chunk and "choices" not in chunk:
            raise UpstreamError(
                f"{self.label} upstream stream error: {self.redact(str(chunk['error']))[:300]}"
            )
        return chunk

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = {**body, "model": self.deployment.model}
        data = await self.post_json(self.url("embeddings"), payload, self.headers())
        if not isinstance(data.get("usage"), dict):
            inputs = body.get("input")
            text = inputs if isinstance(inputs, str) else " ".join(str(i) for i in inputs or [])
            n = estimate_tokens(text)
            data["usage"] = {"prompt_tokens": n, "total_tokens": n, "estimated": True}
        return data


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: deployment in the path, `api-version` query, `api-key` header."""

    name = "azure"
    default_api_base: ClassVar[str | None] = None

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", **self.deployment.headers}
        if self.deployment.api_key:
            h["api-key"] = self.deployment.api_key
        return h

    def url(self, endpoint: str) -> str:
        version = self.deployment.api_version or "2024-10-21"
        return f"{self.api_base}/openai/deployments/{self.deployment.model}/{endpoint}?api-version={version}"


def _estimate_chat(body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    out = " ".join(
        str((c.get("message") or {}).get("content") or "")
        for c in data.get("choices") or ()
        if isinstance(c, dict)
    )
    usage = Usage(
        prompt_tokens=estimate_tokens(messages_text(body.get("messages"))),
        completion_tokens=estimate_tokens(out),
        estimated=True,
    )
    return {**usage.to_openai(), "estimated": True}


_NULL_USAGE = (b',"usage":null', b', "usage": null', b',"usage": null')


def strip_null_usage(data: bytes) -> bytes:
    """Drop `"usage": null` (sent in every chunk once include_usage is on) without parsing the event."""
    for pattern in _NULL_USAGE:
        if pattern in data:
            return data.replace(pattern, b"")
    return data


def _stream_ids(payloads: list[bytes], model: str) -> dict[str, Any]:
    """The id, created and model of a stream's chunks, for the usage chunk the gateway adds itself."""
    for data in reversed(payloads):
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict) and "id" in chunk:
            return {k: chunk.get(k) for k in ("id", "created", "model")}
    return {"id": "chatcmpl-estimated", "created": now_ts(), "model": model}


def _finished(payloads: list[bytes]) -> bool:
    """Whether a choice of these raw events finished (parsed only when the body ended without [DONE])."""
    for data in reversed(payloads):
        if b"finish_reason" not in data:
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if any(isinstance(c, dict) and c.get("finish_reason") for c in choices or ()):
            return True
    return False


def streamed_text(payloads: list[bytes]) -> str:
    """The content deltas of raw events, parsed only when an estimate is needed."""
    out: list[str] = []
    for data in payloads:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        for choice in chunk.get("choices") or () if isinstance(chunk, dict) else ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                out.append(content)
    return "".join(out)


def register(registry: ProviderRegistry) -> None:
    """The `openai` entry point: OpenAI, Azure OpenAI, and the OpenAI-compatible vendors LiteLLM names."""
    registry.add(
        OpenAIProvider,
        *((prefix, Alias("openai", base, price)) for prefix, base, price in _COMPATIBLE),
        guesses=("gpt-", "o1", "o3", "o4", "text-embedding", "chatgpt"),
    )
    registry.add(AzureOpenAIProvider, ("azure", Alias("azure", None, "azure")))


# LiteLLM's `<prefix>/<model>` prefixes served by the openai adapter: (prefix, default base URL, price id).
_COMPATIBLE: tuple[tuple[str, str | None, str | None], ...] = (
    ("openai", "https://api.openai.com/v1", "openai"),
    ("text-completion-openai", "https://api.openai.com/v1", "openai"),
    ("groq", "https://api.groq.com/openai/v1", "groq"),
    ("deepseek", "https://api.deepseek.com/v1", "deepseek"),
    ("mistral", "https://api.mistral.ai/v1", "mistral"),
    ("together_ai", "https://api.together.xyz/v1", "together"),
    ("openrouter", "https://openrouter.ai/api/v1", "openrouter"),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1", "fireworks"),
    ("xai", "https://api.x.ai/v1", "x-ai"),
    ("perplexity", "https://api.perplexity.ai", "perplexity"),
    ("cerebras", "https://api.cerebras.ai/v1", "cerebras"),
    ("hosted_vllm", None, None),
    ("vllm", None, None),
    ("openai_compatible", None, None),
    ("llamacpp", "http://127.0.0.1:8080/v1", None),
    ("lm_studio", "http://127.0.0.1:1234/v1", None),
)
