"""Calls into the lab's own gateway, in process: the router picks the deployment (retries, fallbacks,
cooldowns), and every call becomes a usage event in the ledger with its cost, attributed to the caller,
exactly as if it had come in on /v1 (budgets and rate limits included)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ailab.access import Principal
from ailab.gateway import (
    GatewayError,
    NoDeploymentAvailable,
    Provider,
    RawEvents,
    RequestContext,
    Seen,
    StreamShape,
    UpstreamError,
    check_can_rerank,
    from_upstream,
    interrupted,
    rerank_estimate,
    upstream_rerank,
    usage_of,
)
from ailab.ledger import CURRENT_APP, ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK
from ailab.text import quote_sized as clip

if TYPE_CHECKING:
    from ailab.gateway import GatewayAPI


class ModelCallError(RuntimeError):
    """An embedding or chat call failed at the gateway; `status` is the HTTP status to report."""

    def __init__(self, message: str, status: int = 502, code: str = "model_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GatewayClient:
    def __init__(self, api: GatewayAPI) -> None:
        self.api = api

    def has_model(self, group: str) -> bool:
        return group in self.api.router.groups

    def chat_models(self) -> list[str]:
        return [
            g
            for g, deps in self.api.router.groups.items()
            if deps and deps[0].mode not in ("embedding", "rerank")
        ]

    async def embed(self, principal: Principal, group: str, texts: list[str]) -> np.ndarray:
        body = {"model": group, "input": texts}
        result = await self._unary(principal, group, body, ENDPOINT_EMBEDDINGS)
        data = sorted(result.get("data") or [], key=lambda d: d.get("index", 0))
        if len(data) != len(texts):
            raise ModelCallError(
                f"embedding model {clip(group)} returned {len(data)} vectors for {len(texts)} texts"
            )
        vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.clip(norms, 1e-12, None)  # stores and scores assume unit vectors
        return unit

    async def rerank(
        self,
        principal: Principal,
        group: str,
        query: str,
        documents: list[str],
        ctx: RequestContext | None = None,
    ) -> list[dict[str, Any]]:
        """`/v1/rerank` in process: results `{index, relevance_score}`, best first, ledgered as `rerank`."""
        body = {"model": group, "query": query, "documents": documents, "return_documents": False}
        result = await self._unary(principal, group, body, ENDPOINT_RERANK, ctx)
        results: list[dict[str, Any]] = result["results"]
        return results

    async def chat(
        self, principal: Principal, group: str, body: dict[str, Any], ctx: RequestContext | None = None
    ) -> dict[str, Any]:
        """`ctx`: pass one to set extra ledger fields (`ctx.ledger`) or read the ledger event after."""
        return await self._unary(principal, group, {**body, "model": group}, ENDPOINT_CHAT, ctx)

    async def _unary(
        self,
        principal: Principal,
        group: str,
        body: dict[str, Any],
        endpoint: int,
        ctx: RequestContext | None = None,
    ) -> dict[str, Any]:
        ctx = await self._start(principal, group, body, endpoint, False, ctx)
        cycle = self.api.cycle

        async def call() -> dict[str, Any]:
            try:
                result: dict[str, Any] = await cycle.call(ctx, _caller(endpoint, body))
            except (UpstreamError, NoDeploymentAvailable) as exc:
                raise _call_error(group, cycle.failure(ctx, exc)) from None
            ctx.outcome.usage = usage_of(result)
            return result

        return await cycle.run(ctx, call)

    async def chat_stream(
        self, principal: Principal, group: str, body: dict[str, Any], ctx: RequestContext | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chat.completion.chunk dicts; the usage chunk (choices: []) comes last. `ctx` as for
        `chat`: its `event` is the ledger event once the iteration has ended."""
        body = {**body, "model": group, "stream": True}
        ctx = await self._start(principal, group, body, ENDPOINT_CHAT, True, ctx)
        cycle = self.api.cycle
        cycle.begin(ctx)
        try:
            start = await cycle.open_stream(ctx)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            err = cycle.failure(ctx, exc)
            await cycle.end(ctx)
            raise _call_error(group, err) from None
        try:
            async for chunk in self._relay(ctx, start.first, start.rest):
                yield chunk
        except BaseException as exc:
            start.release()
            await cycle.end(ctx, exc)
            raise
        start.release()
        await cycle.end(ctx)

    async def _relay(self, ctx: RequestContext, first: Any, rest: Any) -> AsyncIterator[dict[str, Any]]:
        shape, seen, item = StreamShape(ctx), Seen(), first
        try:
            while item is not None:
                for chunk in _chunks(item):
                    if ctx.outcome.ttft is None:
                        ctx.outcome.ttft = time.perf_counter() - ctx.t0
                    if isinstance(chunk.get("usage"), dict):
                        ctx.outcome.usage = usage_of(chunk)
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            seen.text.append(content)
                    yield chunk
                item = await anext(rest, None)
        except UpstreamError as exc:
            # The same failure as on /v1: ledgered stream_interrupted with the delivered tokens.
            err = from_upstream(exc)
            interrupted(ctx, shape, err.status, "stream_interrupted", seen)
            raise _call_error(ctx.group, err) from None
        if ctx.outcome.usage is None:
            interrupted(ctx, shape, 200, None, seen)

    async def _start(
        self,
        principal: Principal,
        group: str,
        body: dict[str, Any],
        endpoint: int,
        stream: bool,
        ctx: RequestContext | None,
    ) -> RequestContext:
        """The context, resolved (model scope, fallbacks) and reserved; a refusal is ledgered as on /v1
        and raised as a ModelCallError."""
        ctx = ctx or RequestContext(endpoint)
        ctx.endpoint, ctx.principal, ctx.body, ctx.stream = endpoint, principal, body, stream
        app = CURRENT_APP.get()  # made for an app (its retrieval's embeddings): ledgered with it
        if app is not None:
            ctx.ledger.setdefault("app", app)
        cycle = self.api.cycle
        try:
            # The same answer as /v1 (404 model_not_found) for a model that is not served and for one
            # the key may not use.
            cycle.resolve(ctx, group)
            budgeter = cycle.budgeter
            if endpoint == ENDPOINT_RERANK:
                check_can_rerank(self.api.router, group)
                estimate = (rerank_estimate(body), 0)
            else:
                estimate = budgeter.estimate(body, endpoint == ENDPOINT_CHAT) if budgeter else (0, 0)
            await cycle.reserve(ctx, *estimate)
        except GatewayError as err:
            await cycle.refuse(ctx, err)
            raise ModelCallError(err.message, err.status, err.code or err.type) from None
        return ctx


def _caller(endpoint: int, body: dict[str, Any]) -> Callable[[Provider], Awaitable[dict[str, Any]]]:
    if endpoint == ENDPOINT_CHAT:
        return lambda p: p.chat(body)
    if endpoint == ENDPOINT_RERANK:
        return lambda p: upstream_rerank(p, body)
    return lambda p: p.embed(body)


def _call_error(group: str, err: GatewayError) -> ModelCallError:
    """An upstream failure as the knowledge pillar reports it (a 4xx from the upstream is the gateway's
    failure to the knowledge client, hence 502)."""
    status = 502 if err.status < 500 else err.status
    return ModelCallError(f"model {clip(group)}: {err.message}", status, err.code or "model_error")


def _chunks(item: Any) -> list[dict[str, Any]]:
    if isinstance(item, RawEvents):
        out = []
        for payload in item.payloads:
            obj = orjson.loads(payload)
            if isinstance(obj, dict):
                out.append(obj)
        return out
    return [item] if isinstance(item, dict) else []
