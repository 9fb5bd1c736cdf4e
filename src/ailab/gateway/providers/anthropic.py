"""Anthropic Messages API adapter (POST /v1/messages, `x-api-key`, `anthropic-version`).

Request/response mapping lives in anthropic_convert.py; this module does the HTTP and turns Anthropic's
typed SSE events (message_start, content_block_*, message_delta, message_stop, error) into OpenAI chunks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ailab.gateway.providers.anthropic_convert import (
    JSON_TOOL,
    estimated_usage,
    finish_reason,
    json_mode,
    to_anthropic,
    to_openai,
    usage_from,
)
from ailab.gateway.providers.base import Provider, loads_event, now_ts, usage_chunk
from ailab.gateway.providers.registry import Alias, ProviderRegistry
from ailab.gateway.types import UpstreamError

API_VERSION = "2023-06-01"
# Anthropic's documented error types and the HTTP status each one comes with.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicProvider(Provider):
    name = "anthropic"
    default_api_base = "https://api.anthropic.com"

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if not any(k.lower() == "anthropic-version" for k in h):
            h["anthropic-version"] = self.deployment.api_version or API_VERSION
        if self.deployment.api_key:
            h["x-api-key"] = self.deployment.api_key
        return h

    def url(self) -> str:
        base = self.api_base
        if base.endswith("/v1/messages"):
            return base
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = to_anthropic(body, self.deployment.model)
        data = await self.post_json(self.url(), payload, self.headers())
        if data.get("type") == "error":
            raise self.event_error(data)
        return to_openai(data, body)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = {**to_anthropic(body, self.deployment.model), "stream": True}
        state = _StreamState(json_mode=json_mode(body), model=self.deployment.model)
        async for data in self.sse_data(self.url(), payload, self.headers()):
            event = loads_event(data, self.label)
            kind = event.get("type")
            if kind == "error":
                raise self.event_error(event)
            if kind == "message_stop":
                yield state.chunk({}, state.finish())
                yield state.usage_chunk(body)
                return
            for delta in state.handle(event):
                yield state.chunk(delta)
        raise UpstreamError(f"{self.label} upstream stream ended before message_stop", kind="connection")

    def event_error(self, event: dict[str, Any]) -> UpstreamError:
        """An error sent inside a 200 response (mid-stream): status from Anthropic's error type."""
        raw = event.get("error")
        err: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = str(err.get("type") or "api_error")
        message = self.redact(str(err.get("message") or kind))[:500]
        status = ERROR_STATUS.get(kind, 500)
        what = f"{self.label} upstream stream error {status} ({kind})"
        return UpstreamError(f"{what}: {message}", status=status)


@dataclass
class _StreamState:
    """What the SSE events have told us so far; `handle` returns the OpenAI deltas an event produces."""

    json_mode: bool = False
    id: str = "msg_unknown"
    model: str = ""
    created: int = field(default_factory=now_ts)
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    blocks: dict[int, tuple[str, int]] = field(default_factory=dict)  # block index -> (kind, tool index)
    tools: int = 0
    text: list[str] = field(default_factory=list)

    def handle(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._merge_usage(event.get("usage"))
        return []  # ping, content_block_stop and event types added later by Anthropic need no output

    def _start(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        self.id = str(message.get("id") or self.id)
        self.model = str(message.get("model") or self.model)
        self._merge_usage(message.get("usage"))
        return [{"role": "assistant", "content": ""}]

    def _merge_usage(self, raw: Any) -> None:
        # Anthropic's usage counts are cumulative (message_delta repeats the running total), never increments.
        if not isinstance(raw, dict):
            return
        for key in USAGE_FIELDS:
            value = raw.get(key)
            if isinstance(value, int):
                self.usage[key] = max(self.usage.get(key, 0), value)
        if isinstance(raw.get("cache_creation"), dict):  # the writes by lifetime (5 minutes, 1 hour)
            self.usage["cache_creation"] = raw["cache_creation"]

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = str(block.get("type") or "")
        if kind == "tool_use" and self.json_mode and block.get("name") == JSON_TOOL:
            self.blocks[index] = ("json", -1)
            return []
        if kind != "tool_use":
            self.blocks[index] = (kind, -1)
            text = block.get("text") if kind == "text" else None
            return self._text_delta(text) if text else []
        tool_index = self.tools
        self.tools += 1
        self.blocks[index] = ("tool_use", tool_index)
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [{"tool_calls": [call]}]

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        block_kind, tool_index = self.blocks.get(index, ("", -1))
        if kind == "text_delta":
            return self._text_delta(delta.get("text"))
        if kind == "thinking_delta" and delta.get("thinking"):
            return [{"reasoning_content": delta["thinking"]}]
        if kind != "input_json_delta" or not delta.get("partial_json"):
            return []  # signature_delta, citations_delta, empty fragments
        fragment = str(delta["partial_json"])
        if block_kind == "json":
            return self._text_delta(fragment)
        self.text.append(fragment)
        return [{"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]}]

    def _text_delta(self, text: Any) -> list[dict[str, Any]]:
        if not text:
            return []
        self.text.append(str(text))
        return [{"content": str(text)}]

    def finish(self) -> str:
        # In JSON mode the forced tool call is the answer, so the turn ends normally.
        if self.json_mode and self.stop_reason == "tool_use":
            return "stop"
        return finish_reason(self.stop_reason)

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def usage_chunk(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.usage:
            usage = usage_from(dict(self.usage)).to_openai()
        else:
            usage = estimated_usage(body, "".join(self.text))
        return usage_chunk(self.id, self.created, self.model, usage)


def register(registry: ProviderRegistry) -> None:
    """The `anthropic` entry point; unprefixed `claude…` model names are inferred to it."""
    registry.add(
        AnthropicProvider,
        ("anthropic", Alias("anthropic", "https://api.anthropic.com", "anthropic")),
        guesses=("claude",),
    )
