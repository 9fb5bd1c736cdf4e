"""Budgets and rate limits around a gateway request: reserve an estimate before the upstream call, settle
the real cost after. Only principals with limits pay for this; everyone else skips it entirely."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from ailab.gateway.errors import GatewayError, retry_after_header
from ailab.gateway.providers.base import estimate_tokens, messages_text
from ailab.gateway.types import Deployment, Usage
from ailab.ledger import PriceBook
from ailab.limits import Limiter, LimiterUnavailable, LimitExceeded, Rate, Reservation
from ailab.observability import Metrics


@dataclass
class Budgeter:
    limiter: Limiter
    prices: PriceBook
    metrics: Metrics
    default_max_tokens: int = 1024

    async def reserve(
        self, scopes: tuple[Any, ...], body: dict[str, Any], deployments: list[Deployment], chat: bool
    ) -> Reservation:
        prompt, completion = self.estimate(body, chat)
        return await self.reserve_tokens(scopes, deployments, prompt, completion)

    def estimate(self, body: dict[str, Any], chat: bool) -> tuple[int, int]:
        """(prompt, completion) tokens to reserve for a chat or embeddings body."""
        prompt = estimate_tokens(messages_text(body.get("messages")) if chat else _embedding_text(body))
        if not chat:
            return prompt, 0
        return prompt, self.completion_estimate(body)

    def completion_estimate(self, body: dict[str, Any], *names: str) -> int:
        """The completion tokens a generating request may use: its max-tokens field (`names`, else chat's),
        or the configured default, times `n`."""
        fields = names or ("max_completion_tokens", "max_tokens")
        asked = next((body.get(f) for f in fields if body.get(f)), None)
        return int(asked or self.default_max_tokens) * int(body.get("n") or 1)

    async def reserve_tokens(
        self, scopes: tuple[Any, ...], deployments: list[Deployment], prompt: int, completion: int
    ) -> Reservation:
        """Reserve an estimate (tokens; cost at the dearest deployment of the group)."""
        cost = self._estimate(deployments, Usage(prompt_tokens=prompt, completion_tokens=completion))
        try:
            return await self.limiter.acquire(scopes, prompt + completion, cost)
        except LimitExceeded as exc:
            self.metrics.limit_rejections.labels(exc.scope.kind, exc.limit).inc()
            headers = retry_after_header(exc.retry_after)
            rate = exc.rate
            if rate is not None:
                kind = "requests" if exc.limit == "rpm" else "tokens"
                headers.update((k.decode(), v.decode()) for k, v in _rate_headers(kind, rate))
            raise GatewayError(429, exc.message, code=f"{exc.limit}_exceeded", headers=headers) from None
        except LimiterUnavailable:
            # Fail closed: a limit we cannot check is a limit we do not enforce.
            raise GatewayError(
                503,
                "rate-limit store unavailable; requests with limits are paused",
                code="limiter_unavailable",
            ) from None

    async def settle(
        self, reservation: Reservation, usage: Usage, cost_pusd: int | None, at: float | None = None
    ) -> None:
        """`at`: the ledger row's time, so that the cost counts in the budget period the row lands in."""
        tokens = usage.prompt_tokens + usage.completion_tokens
        settle_now = getattr(self.limiter, "settle_now", None)  # the in-process limiter never awaits
        if settle_now is not None:
            settle_now(reservation, tokens, cost_pusd, at)
            return
        try:
            # Shielded: a request cancelled mid-settle must not leave its reservation half-released.
            await asyncio.shield(self.limiter.settle(reservation, tokens, cost_pusd, at))
        except LimiterUnavailable:
            return  # the store's reservation TTL releases it

    def cost(self, dep: Deployment | None, usage: Usage, latency_s: float, failed: bool) -> int | None:
        return self.prices.cost_pusd(dep, usage, latency_s, failed)

    def _estimate(self, deployments: list[Deployment], usage: Usage) -> int:
        """The dearest deployment of the group: the router may pick any of them. A time-priced one is
        estimated at its requests' observed time (a moving average of their whole time there, an upper
        bound of the share they are billed), or at DEFAULT_REQUEST_S before it has served any. An unpriced
        one is estimated at 0, which a zero or spent budget still refuses."""
        costs = [self.prices.cost_pusd(d, usage, d.state.busy.expected_s(), False) for d in deployments]
        return max((c for c in costs if c is not None), default=0)


def _embedding_text(body: dict[str, Any]) -> str:
    inp = body.get("input")
    return inp if isinstance(inp, str) else " ".join(str(x) for x in inp or [])


def rate_headers(res: Reservation) -> list[tuple[bytes, bytes]]:
    """OpenAI's x-ratelimit-* headers for a reservation's windows (none for a key without rpm/tpm)."""
    out: list[tuple[bytes, bytes]] = []
    if res.requests is not None:
        out += _rate_headers("requests", res.requests)
    if res.tokens is not None:
        out += _rate_headers("tokens", res.tokens)
    return out


def _rate_headers(kind: str, rate: Rate) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-" + kind.encode(), str(rate.limit).encode()),
        (b"x-ratelimit-remaining-" + kind.encode(), str(rate.remaining).encode()),
        (b"x-ratelimit-reset-" + kind.encode(), go_duration(rate.reset_s).encode()),
    ]


def go_duration(seconds: float) -> str:
    """A duration the way OpenAI writes its reset headers (Go's time.Duration): '1s', '6m0s', '59.5s',
    '120ms', '0s'; rounded up to the millisecond so that a client never retries too early."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
