"""Google Gemini through the Generative Language API (AI Studio keys).

Chat goes to `models/{model}:generateContent` / `:streamGenerateContent?alt=sse`, embeddings to
`:batchEmbedContents`; the key travels in the `x-goog-api-key` header, never in the URL.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ailab.gateway.providers.base import (
    Provider,
    cap_retry_after,
    estimate_tokens,
    loads_event,
    now_ts,
    usage_chunk,
)
from ailab.gateway.providers.gemini_convert import (
    finish_reason,
    split_parts,
    to_gemini,
    to_openai,
    usage_dict,
)
from ailab.gateway.providers.registry import Alias, ProviderRegistry
from ailab.gateway.types import UpstreamError


class GeminiProvider(Provider):
    name = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com"

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if self.deployment.api_key:
            h["x-goog-api-key"] = self.deployment.api_key
        return h

    def url(self, action: str) -> str:
        model = self.deployment.model.removeprefix("models/")
        base = self.api_base
        if not base.endswith(("/v1beta", "/v1")):  # LiteLLM users often configure the versioned base
            base += "/v1beta"
        return f"{base}/models/{model}:{action}"

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = to_gemini(body, self.deployment.model)
        data = await self.post_json(self.url("generateContent"), payload, self.headers())
        return to_openai(data, body, self.deployment.model, now_ts())

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = to_gemini(body, self.deployment.model)
        state = StreamState(body, self.deployment.model)
        async for data in self.sse_data(
            self.url("streamGenerateContent") + "?alt=sse", payload, self.headers()
        ):
            event = loads_event(data, self.label)
            if "error" in event:
                raise self._error_from(event, None, "stream error")
            for chunk in state.feed(event):
                yield chunk
        yield state.close()

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = _embed_inputs(body.get("input"))
        model = self.deployment.model.removeprefix("models/")
        requests: list[dict[str, Any]] = []
        for text in texts:
            req: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
            if body.get("dimensions") is not None:
                req["outputDimensionality"] = body["dimensions"]
            requests.append(req)
        data = await self.post_json(self.url("batchEmbedContents"), {"requests": requests}, self.headers())
        embeddings = data.get("embeddings")
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise UpstreamError(
                f"{self.label} upstream sent a malformed embeddings body", kind="protocol", status=502
            )
        as_b64 = body.get("encoding_format") == "base64"
        items = [
            {"object": "embedding", "index": i, "embedding": _encode(e.get("values") or [], as_b64)}
            for i, e in enumerate(embeddings)
        ]
        # batchEmbedContents reports no token usage: estimate, and say so.
        tokens = sum(estimate_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens, "estimated": True}
        return {"object": "list", "data": items, "model": self.deployment.model, "usage": usage}

    # -- errors -----------------------------------------------------------------------------------------

    def http_error(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        err = super().http_error(status, raw, headers)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return err
        if isinstance(obj, list) and obj:
            obj = obj[0]  # some Google front ends wrap the error in a list
        if not isinstance(obj, dict) or not isinstance(obj.get("error"), dict):
            return err
        return self._error_from(obj, status, f"error {status}", err.retry_after)

    def _error_from(
        self, obj: dict[str, Any], status: int | None, what: str, retry_after: float | None = None
    ) -> UpstreamError:
        """Google's `{"error": {code, message, status, details}}`; RetryInfo carries the 429 back-off."""
        err = obj.get("error")
        if not isinstance(err, dict):
            return UpstreamError(f"{self.label} upstream {what}", status=status or 502)
        code = err.get("code")
        status = status or (code if isinstance(code, int) and code >= 400 else 500)
        label = f" ({err['status']})" if err.get("status") else ""
        message = self.redact(str(err.get("message") or f"HTTP {status}"))[:500]
        if retry_after is None:
            retry_after = _retry_delay(err.get("details"))
        return UpstreamError(
            f"{self.label} upstream {what}{label}: {message}", status=status, retry_after=retry_after
        )


class StreamState:
    """Turns Gemini stream events (whole parts, cumulative usage) into OpenAI chunks."""

    def __init__(self, body: dict[str, Any], model: str) -> None:
        self.body = body
        self.model = model
        self.id: str | None = None
        self.created = now_ts()
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate index -> tool calls emitted so far
        self.usage: Any = None
        self.output: list[str] = []

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.id = self.id or f"chatcmpl-{event.get('responseId') or self.created}"
        self.model = event.get("modelVersion") or self.model
        if isinstance(event.get("usageMetadata"), dict):
            self.usage = event["usageMetadata"]  # cumulative: the last one wins
        out: list[dict[str, Any]] = []
        for pos, cand in enumerate(event.get("candidates") or ()):
            index = cand.get("index")
            out.extend(self._candidate(index if isinstance(index, int) else pos, cand))
        blocked = (event.get("promptFeedback") or {}).get("blockReason")
        if blocked and not self.started:
            self.started.add(0)
            self.finished.add(0)
            out += [self.chunk(0, {"role": "assistant", "content": ""}), self.chunk(0, {}, "content_filter")]
        return out

    def _candidate(self, index: int, cand: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if index not in self.started:
            self.started.add(index)
            out.append(self.chunk(index, {"role": "assistant", "content": ""}))
        first = self.calls.get(index, 0)
        text, thoughts, calls = split_parts((cand.get("content") or {}).get("parts"), first)
        if thoughts:
            out.append(self.chunk(index, {"reasoning_content": thoughts}))
        if text:
            self.output.append(text)
            out.append(self.chunk(index, {"content": text}))
        for n, call in enumerate(calls, start=first):
            # Gemini sends each call whole, so one delta carries id, name and the full arguments.
            self.output.append(call["function"]["arguments"])
            out.append(self.chunk(index, {"tool_calls": [{"index": n, **call}]}))
        self.calls[index] = first + len(calls)
        if cand.get("finishReason") and index not in self.finished:
            self.finished.add(index)
            out.append(self.chunk(index, {}, finish_reason(cand["finishReason"], self.calls[index] > 0)))
        return out

    def close(self) -> dict[str, Any]:
        """The final usage chunk; a stream that stopped before every candidate finished was truncated."""
        if not self.started or self.started - self.finished:
            raise UpstreamError(
                "gemini upstream stream ended before a finish reason", kind="protocol", status=502
            )
        usage = usage_dict(self.usage, self.body, "".join(self.output))
        return usage_chunk(self.id or "", self.created, self.model, usage)


def _retry_delay(details: Any) -> float | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay") or "").removesuffix("s")  # protobuf Duration: "37s", "1.5s"
            try:
                return cap_retry_after(float(delay))
            except ValueError:
                return None
    return None


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise UpstreamError("gemini: parameter `input` must be a string or a list of strings", status=400)


def _encode(values: list[float], as_b64: bool) -> list[float] | str:
    if not as_b64:
        return values
    packed = array.array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()  # OpenAI's base64 embeddings are little-endian float32
    return base64.b64encode(packed.tobytes()).decode()


def register(registry: ProviderRegistry) -> None:
    """The `gemini` entry point (Google AI Studio); unprefixed `gemini…` names are inferred to it."""
    registry.add(
        GeminiProvider,
        ("gemini", Alias("gemini", "https://generativelanguage.googleapis.com", "google")),
        guesses=("gemini",),
    )
