"""Native pass-through to upstreams that serve the Responses API themselves (OpenAI, Azure OpenAI).

The lab keeps the conversation state: `previous_response_id` is expanded into input items here, and the
upstream is asked with `store: false`, so a follow-up works on any deployment of the group (or another
provider after a fallback), and the upstream keeps no copy the lab's retention setting does not govern.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ailab.gateway.providers.base import Provider, estimate_tokens, loads_event
from ailab.gateway.providers.openai_compat import AzureOpenAIProvider, OpenAIProvider
from ailab.gateway.responses.from_chat import from_responses_usage, output_text, to_responses_usage
from ailab.gateway.types import StreamItem, UpstreamError, Usage

NATIVE_LABELS = ("openai", "azure")
AZURE_VERSION = "2025-04-01-preview"
FINAL = ("response.completed", "response.incomplete", "response.failed")


def speaks_responses(provider: Provider) -> bool:
    """OpenAI and Azure deployments do, unless configured chat-only (`model_info.responses_api: false`);
    any other OpenAI-compatible server does only when configured so (`responses_api: true`)."""
    if not isinstance(provider, OpenAIProvider):
        return False
    flag = provider.deployment.info.responses_api
    if flag is not None:
        return bool(flag)
    return provider.deployment.provider_label in NATIVE_LABELS


def url(provider: Provider) -> str:
    if isinstance(provider, AzureOpenAIProvider):
        version = provider.deployment.api_version or AZURE_VERSION
        return f"{provider.api_base}/openai/responses?api-version={version}"
    assert isinstance(provider, OpenAIProvider)
    return provider.url("responses")


def upstream_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as the upstream takes them: the ids the lab gave to input items are the lab's own (an
    upstream with `store: false` knows none of them), so they go; output items keep theirs."""
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "function_call_output" or (
            item.get("type") == "message" and item.get("role") != "assistant"
        ):
            item = {k: v for k, v in item.items() if k not in ("id", "status")}
        out.append(item)
    return out


def payload(provider: Provider, body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in ("previous_response_id", "store", "stream")}
    out["model"] = provider.deployment.model
    out["input"] = upstream_items(items)
    out["store"] = False
    return out


async def create(provider: Provider, body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    data = await provider.post_json(url(provider), payload(provider, body, items), provider.headers())
    if from_responses_usage(data.get("usage")) is None:
        data["usage"] = {**to_responses_usage(estimate(items, output_text(data))), "estimated": True}
    return data


async def stream(
    provider: Provider, body: dict[str, Any], items: list[dict[str, Any]]
) -> AsyncIterator[StreamItem]:
    """The upstream's events as dicts; a body that ends before a final event was cut."""
    wire = {**payload(provider, body, items), "stream": True}
    final = False
    async for batch in provider.sse_batches(url(provider), wire, provider.headers()):
        if not batch and not final:
            raise UpstreamError(
                f"{provider.label} upstream stream ended before the response finished",
                kind="connection",
                status=502,
            )
        for data in batch:
            event = loads_event(data, provider.label)
            if event.get("type") == "error":
                message = provider.redact(str(event.get("message")))[:300]
                raise UpstreamError(f"{provider.label} upstream stream error: {message}")
            final = final or event.get("type") in FINAL
            yield event


def estimate(items: list[dict[str, Any]], text: str) -> Usage:
    words = " ".join(
        str(p.get("text") or "")
        for i in items
        if i.get("type") == "message"
        for p in i.get("content") or ()
        if isinstance(p, dict)
    )
    return Usage(
        prompt_tokens=estimate_tokens(words), completion_tokens=estimate_tokens(text), estimated=True
    )
