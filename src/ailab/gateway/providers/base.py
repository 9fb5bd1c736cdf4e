"""The provider plugin interface and the HTTP helpers every adapter shares.

An adapter translates OpenAI chat/embeddings requests to its wire format and back. Contract:
- `chat(body)` returns an OpenAI `chat.completion` dict whose `usage` is the upstream's (never invented
  silently: if the upstream gave none, return usage with `"estimated": True`).
- `chat_stream(body)` yields OpenAI `chat.completion.chunk` dicts and ends with one usage chunk
  (`choices: []`, `usage: {...}`), as OpenAI does with `stream_options.include_usage`. The gateway decides
  what the client sees.
- `embed(body)` returns an OpenAI embeddings `list` dict with usage.
- Failures raise `UpstreamError`; retries, fallbacks and metering wrap adapters, they are not inside them.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import aiohttp
import orjson

from ailab.gateway.errors import clip, quote
from ailab.gateway.types import Deployment, StreamItem, UpstreamError

MAX_ERROR_BODY = 64 * 1024
MAX_RETRY_AFTER = 300.0  # seconds: the longest back-off or cooldown an upstream's Retry-After can ask for


class Provider:
    name: ClassVar[str] = ""
    default_api_base: ClassVar[str | None] = None

    def __init__(self, deployment: Deployment, session: aiohttp.ClientSession) -> None:
        self.deployment = deployment
        self.session = session
        base = deployment.api_base or self.default_api_base
        if not base:
            raise ValueError(f"deployment {deployment.id}: provider {self.label!r} needs api_base")
        self.api_base = base.rstrip("/")

    @property
    def label(self) -> str:
        """The provider as the user configured it (`hosted_vllm`, `groq` …): what error messages name."""
        return self.deployment.provider_label or self.name

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"{self.label} does not support chat completions", kind="http", status=400)

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[StreamItem]:
        raise UpstreamError(f"{self.label} does not support streaming", kind="http", status=400)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"{self.label} does not support embeddings", kind="http", status=400)

    # -- shared HTTP plumbing -------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.deployment.headers}

    def _timeout(self, stream: bool) -> aiohttp.ClientTimeout:
        d = self.deployment
        if stream:
            t = d.stream_timeout or d.timeout
            return aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
        return aiohttp.ClientTimeout(total=d.timeout)

    async def post_json(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._mapped_errors():
            async with self.session.post(
                url, data=orjson.dumps(payload), headers=headers, timeout=self._timeout(False)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self.http_error(resp.status, raw, resp.headers)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.label} upstream sent invalid JSON", kind="protocol", status=502
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{self.label} upstream sent a non-object JSON body", kind="protocol", status=502
            )
        return data

    async def stream_lines(
        self, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[bytes]:
        """POST and yield the response body line by line (SSE or NDJSON), stripped."""
        async for batch in self.stream_batches(url, payload, headers):
            for line in batch:
                yield line

    async def stream_batches(
        self, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[list[bytes]]:
        """POST and yield the complete, non-empty lines of each network read together, so a relay can
        forward a read with one write instead of one per line."""
        with self._mapped_errors():
            async with self.session.post(
                url, data=orjson.dumps(payload), headers=headers, timeout=self._timeout(True)
            ) as resp:
                if resp.status >= 400:
                    raise self.http_error(resp.status, await resp.content.read(MAX_ERROR_BODY), resp.headers)
                partial = b""
                async for data in resp.content.iter_any():
                    lines = (partial + data).split(b"\n")
                    partial = lines.pop()
                    batch = [s for s in (line.strip() for line in lines) if s]
                    if batch:
                        yield batch
                if partial.strip():
                    yield [partial.strip()]

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """aiohttp's failures as UpstreamError kinds the router understands (timeout, connection)."""
        try:
            yield
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError(f"{self.label} upstream timed out", kind="timeout") from None
        except aiohttp.ClientPayloadError:
            raise UpstreamError(f"{self.label} upstream stream was cut", kind="connection") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{self.label} upstream unreachable: {type(exc).__name__}", kind="connection"
            ) from None

    async def sse_batches(
        self, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[list[bytes]]:
        """The `data:` payloads of each network read, ending at `[DONE]`. A body that ends without `[DONE]`
        ends with one empty batch, so the caller can tell a finished stream from a cut one."""
        async for batch in self.stream_batches(url, payload, headers):
            out: list[bytes] = []
            for line in batch:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    if out:
                        yield out
                    return
                out.append(data)
            if out:
                yield out
        yield []

    async def sse_data(
        self, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[bytes]:
        """Yield the `data:` payloads of an SSE stream, ending at `[DONE]` or the end of the body."""
        async for line in self.stream_lines(url, payload, headers):
            if not line.startswith(b"data:"):
                continue  # comments, event: names (the data carries the type), id:, retry:
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            yield data

    def http_error(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        message = self.redact(_error_message(raw) or f"HTTP {status}")
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        fields = {k: self.redact(clip(v, 100)) for k, v in error_fields(raw).items()}
        return UpstreamError(
            f"{self.label} upstream error {status}: {message}",
            status=status,
            retry_after=retry_after,
            **fields,
        )

    def redact(self, text: str) -> str:
        key = self.deployment.api_key
        return text.replace(key, "***") if key and len(key) >= 4 else text


def usage_chunk(chunk_id: str, created: int, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The final chunk of every adapter's stream: OpenAI's include_usage shape."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def loads_event(data: bytes, provider: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"{provider} upstream sent an invalid stream event", kind="protocol", status=502
        ) from None
    if not isinstance(obj, dict):
        raise UpstreamError(
            f"{provider} upstream sent a non-object stream event", kind="protocol", status=502
        )
    return obj


def _error_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:500].decode("utf-8", "replace").strip()
    if isinstance(data, list) and data:
        data = data[0]  # Gemini sometimes wraps errors in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or "")[:500]
        return str(err)[:500]
    return ""


def error_fields(raw: bytes) -> dict[str, str]:
    """The string `code`, `param` and `type` of an OpenAI- (or Anthropic-) shaped error body."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return {}
    return {k: err[k] for k in ("code", "param", "type") if isinstance(err.get(k), str) and err[k]}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), capped: `inf`, `1e308` or a date in
    the year 9999 must neither overflow nor cool a deployment down for ever; `nan` is no value."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        seconds = when.timestamp() - time.time()
    return cap_retry_after(seconds)


def cap_retry_after(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def estimate_tokens(text: str) -> int:
    """Rough count for upstreams that report none (~4 characters a token); such rows are marked estimated."""
    return max(1, (len(text) + 3) // 4) if text else 0


def messages_text(messages: Any) -> str:
    parts: list[str] = []
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts)


def tool_choice(choice: Any, provider: str) -> tuple[str, str | None] | None:
    """An OpenAI `tool_choice` as (mode, function name): mode is auto, required or none (name None), or
    function; None when absent. Raises a 400 naming `provider` for a value no provider can map."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "required", "none"):
            problem = f"has an unknown value {quote(choice)}"
            raise UpstreamError(f"{provider}: parameter `tool_choice` {problem}", kind="http", status=400)
        return choice, None
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not name:
        message = f"{provider}: parameter `tool_choice` must name a function"
        raise UpstreamError(message, kind="http", status=400)
    return "function", name


def now_ts() -> int:
    return int(time.time())


__all__ = [
    "Provider",
    "UpstreamError",
    "estimate_tokens",
    "loads_event",
    "messages_text",
    "now_ts",
    "parse_retry_after",
]
