"""Calls into the lab's own gateway, in process: the router picks the deployment (retries, fallbacks,
cooldowns), and every call becomes a usage event in the ledger with its cost, attributed to the caller,
exactly as if it had come in on /v1 (budgets and rate limits included)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ailab.access import Principal
from ailab.gateway.api import Outcome
from ailab.gateway.errors import GatewayError
from ailab.gateway.router import Attempt, NoDeploymentAvailable
from ailab.gateway.types import RawEvents, UpstreamError, Usage
from ailab.ledger import ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS
from ailab.text import quote_sized as clip

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI


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
        return [g for g, deps in self.api.router.groups.items() if deps and deps[0].mode != "embedding"]

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

    async def chat(self, principal: Principal, group: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._unary(principal, group, {**body, "model": group}, ENDPOINT_CHAT)

    async def _unary(
        self, principal: Principal, group: str, body: dict[str, Any], endpoint: int
    ) -> dict[str, Any]:
        self._check_group(principal, group)
        t0 = time.perf_counter()
        reservation = await self._reserve(principal, group, body, endpoint == ENDPOINT_CHAT)
        attempt, outcome = Attempt(group), Outcome()
        try:
            call = (lambda p: p.chat(body)) if endpoint == ENDPOINT_CHAT else (lambda p: p.embed(body))
            result: dict[str, Any] = await self.api.router.call(group, call, attempt)
            outcome.usage = Usage.from_openai(result.get("usage"))
            return result
        except (UpstreamError, NoDeploymentAvailable) as exc:
            outcome.status = getattr(exc, "status", None) or 502
            outcome.error_type = getattr(exc, "kind", "no_deployment_available")
            raise ModelCallError(
                f"model {clip(group)}: {exc}", 502 if outcome.status < 500 else outcome.status
            ) from None
        finally:
            await self._finish(endpoint, principal, attempt, outcome, False, t0, reservation)

    async def chat_stream(
        self, principal: Principal, group: str, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chat.completion.chunk dicts; the usage chunk (choices: []) comes last."""
        self._check_group(principal, group)
        body = {**body, "model": group, "stream": True}
        t0 = time.perf_counter()
        reservation = await self._reserve(principal, group, body, True)
        attempt, outcome = Attempt(group), Outcome()
        try:
            start = await self.api.router.open_stream(group, body, attempt)
        except (UpstreamError, NoDeploymentAvailable) as exc:
            outcome.status, outcome.error_type = 502, "upstream"
            await self._finish(ENDPOINT_CHAT, principal, attempt, outcome, True, t0, reservation)
            raise ModelCallError(f"model {clip(group)}: {exc}") from None
        try:
            item: Any = start.first
            while item is not None:
                for chunk in _chunks(item):
                    if outcome.ttft is None:
                        outcome.ttft = time.perf_counter() - t0
                    if chunk.get("usage"):
                        outcome.usage = Usage.from_openai(chunk["usage"])
                    yield chunk
                item = await anext(start.rest, None)
        finally:
            start.release()
            await self._finish(ENDPOINT_CHAT, principal, attempt, outcome, True, t0, reservation)

    def _check_group(self, principal: Principal, group: str) -> None:
        # The same answer as /v1 (404 model_not_found) for a model that is not served and for one the key
        # may not use.
        try:
            self.api.check_model(principal, group)
        except GatewayError as err:
            raise ModelCallError(err.message, err.status, err.code or "model_not_found") from None

    async def _reserve(self, principal: Principal, group: str, body: dict[str, Any], chat: bool) -> Any:
        budgeter = self.api.budgeter
        if not principal.limits or budgeter is None:
            return None
        try:
            return await budgeter.reserve(principal.limits, body, self.api.router.groups[group], chat)
        except GatewayError as err:
            raise ModelCallError(err.message, err.status) from None

    async def _finish(
        self,
        endpoint: int,
        principal: Principal,
        attempt: Attempt,
        outcome: Outcome,
        stream: bool,
        t0: float,
        reservation: Any,
    ) -> None:
        # The gateway's own bookkeeping: metrics, the ledger event, and budget settlement.
        event = self.api._finish(
            os.urandom(12).hex(), endpoint, principal, attempt, outcome, stream, t0, reservation
        )
        if reservation is not None and self.api.budgeter is not None:
            await self.api.budgeter.settle(reservation, event.usage, event.cost_pusd, event.ts)


def _chunks(item: Any) -> list[dict[str, Any]]:
    if isinstance(item, RawEvents):
        out = []
        for payload in item.payloads:
            obj = orjson.loads(payload)
            if isinstance(obj, dict):
                out.append(obj)
        return out
    return [item] if isinstance(item, dict) else []
