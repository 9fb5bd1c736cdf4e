"""Native pass-through: an endpoint calls a deployment's own API (OpenAI `/v1/responses`, `/v1/completions`,
`/v1/rerank`, Anthropic `/v1/messages` …) instead of translating to chat. Used inside an endpoint's
`call`/`open`, so routing, retries, fallbacks, cooldowns and metering stay the cycle's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ailab.gateway.providers.anthropic import AnthropicProvider
from ailab.gateway.providers.base import Provider
from ailab.gateway.providers.openai_compat import OpenAIProvider
from ailab.gateway.types import RawEvents


def speaks_openai(provider: Provider) -> bool:
    """OpenAI, Azure and every OpenAI-compatible server (vLLM, llama.cpp, Groq, TEI's OpenAI routes …)."""
    return isinstance(provider, OpenAIProvider)


def speaks_anthropic(provider: Provider) -> bool:
    return isinstance(provider, AnthropicProvider)


def native_url(provider: Provider, path: str) -> str:
    """The deployment's URL for `path`, relative to its `/v1` ("completions", "messages/count_tokens")."""
    if isinstance(provider, OpenAIProvider):
        return provider.url(path)  # Azure: its deployment path and api-version
    if isinstance(provider, AnthropicProvider):
        messages = provider.url()  # …/v1/messages
        return messages[: -len("messages")] + path
    return f"{provider.api_base}/{path}"


def native_payload(provider: Provider, body: dict[str, Any]) -> dict[str, Any]:
    """The client's body with the deployment's own model name (the group name means nothing upstream)."""
    return {**body, "model": provider.deployment.model}


async def native_json(provider: Provider, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the body to the deployment's `path` with its credentials; upstream errors raise UpstreamError
    (retried, fallen back and mapped to the client's error like any provider failure)."""
    return await provider.post_json(
        native_url(provider, path), native_payload(provider, body), provider.headers()
    )


async def native_stream(provider: Provider, path: str, body: dict[str, Any]) -> AsyncIterator[RawEvents]:
    """POST with `stream: true` and yield each network read's SSE events as RawEvents (forwarded byte for
    byte by the relay; `payloads` are the `data:` JSON, parsed only by a shape that needs them)."""
    payload = {**native_payload(provider, body), "stream": True}
    async for batch in provider.stream_batches(native_url(provider, path), payload, provider.headers()):
        yield raw_events(batch)


def raw_events(lines: list[bytes]) -> RawEvents:
    """SSE lines (as `stream_batches` yields them, blank lines dropped) back into wire bytes: a `data:` line
    ends its event."""
    wire = b"".join(line + (b"\n\n" if line.startswith(b"data:") else b"\n") for line in lines)
    return RawEvents(wire, [line[5:].strip() for line in lines if line.startswith(b"data:")])
