"""One Messages call on one deployment, chosen per deployment (the router may fall back across providers):
native pass-through to Anthropic deployments (the body as the client sent it, with the deployment's model;
`anthropic-beta` forwarded), translation to chat for every other provider.

Each call returns what the endpoint sends (a Message, or Anthropic SSE bytes) and keeps the usage the
upstream reported, in the ledger's semantics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ailab.gateway.endpoints.messages_convert import (
    estimate_input_tokens,
    native_usage,
    request_text,
    to_chat,
    to_message,
)
from ailab.gateway.endpoints.messages_stream import NativeEvents
from ailab.gateway.endpoints.native import native_url, speaks_anthropic
from ailab.gateway.providers.anthropic import AnthropicProvider
from ailab.gateway.providers.base import Provider, estimate_tokens
from ailab.gateway.types import RawEvents, StreamItem, UpstreamError, Usage

# Fields of a Messages request that only the gateway reads: never sent upstream.
GATEWAY_FIELDS = ("fallbacks",)


def is_native(provider: Provider) -> bool:
    return speaks_anthropic(provider)


@dataclass
class Call:
    """A Messages request as the gateway will send it: the body and the client headers that travel."""

    body: dict[str, Any]
    beta: str | None = None  # the client's `anthropic-beta`, for Anthropic deployments only

    def native_payload(self, provider: Provider) -> dict[str, Any]:
        payload = {k: v for k, v in self.body.items() if k not in GATEWAY_FIELDS}
        payload["model"] = provider.deployment.model
        return payload

    def native_headers(self, provider: Provider) -> dict[str, str]:
        headers = provider.headers()
        if self.beta:
            headers["anthropic-beta"] = self.beta
        return headers


@dataclass
class Answer:
    message: dict[str, Any]
    usage: Usage | None


async def create(provider: Provider, call: Call) -> Answer:
    if is_native(provider):
        assert isinstance(provider, AnthropicProvider)
        payload = {**call.native_payload(provider), "stream": False}
        data = await provider.post_json(provider.url(), payload, call.native_headers(provider))
        if data.get("type") == "error":
            raise provider.event_error(data)
        return Answer(data, native_usage(data) or _estimate(call.body, data))
    chat = await provider.chat(to_chat({**call.body, "stream": False}, provider.name))
    raw = chat.get("usage")
    usage = Usage.from_openai(raw)
    if usage is not None and isinstance(raw, dict) and raw.get("estimated"):
        usage.estimated = True
    return Answer(to_message(chat, call.body["model"]), usage)


def _estimate(body: dict[str, Any], message: dict[str, Any]) -> Usage:
    """An answer without usage (never from Anthropic itself; from look-alikes): counted, flagged estimated."""
    text = " ".join(str(b.get("text") or "") for b in message.get("content") or () if isinstance(b, dict))
    return Usage(
        prompt_tokens=estimate_tokens(request_text(body)),
        completion_tokens=estimate_tokens(text),
        estimated=True,
    )


async def count_tokens(provider: Provider, call: Call) -> tuple[dict[str, Any], bool]:
    """({"input_tokens": n}, native?): Anthropic's own count, else the gateway's estimate."""
    if not is_native(provider):
        return {"input_tokens": estimate_input_tokens(call.body)}, False
    assert isinstance(provider, AnthropicProvider)
    payload = {k: v for k, v in call.native_payload(provider).items() if k not in ("stream", "max_tokens")}
    url = native_url(provider, "messages/count_tokens")
    data = await provider.post_json(url, payload, call.native_headers(provider))
    if data.get("type") == "error":
        raise provider.event_error(data)
    return data, True


async def native_items(provider: Provider, call: Call, tracker: NativeEvents) -> AsyncIterator[StreamItem]:
    """An Anthropic deployment's stream: each event forwarded as it came (RawEvents), then one OpenAI-style
    usage chunk (`choices: []`) carrying what the events reported, for the ledger."""
    assert isinstance(provider, AnthropicProvider)
    payload = {**call.native_payload(provider), "stream": True}
    async for data in provider.sse_data(provider.url(), payload, call.native_headers(provider)):
        event, wire = tracker.wire(data)
        yield RawEvents(wire, [])  # an `error` event too: the client sees Anthropic's own error type
        if event.get("type") == "error":
            raise provider.event_error(event)  # the relay ends the stream and ledgers the failure
        if tracker.stopped:
            usage = tracker.usage
            yield {"choices": [], "usage": usage.to_openai() if usage else {}}
            return
    what = f"{provider.label} upstream stream ended before message_stop"
    raise UpstreamError(what, kind="connection", status=502)
