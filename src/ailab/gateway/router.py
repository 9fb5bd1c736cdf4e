"""The router: model group → deployment (strategy), with retries, fallbacks and cooldowns around the
provider call. Cross-cutting behaviour wraps the adapters; adapters know nothing of it.

Retries: on 408/409/429/5xx, timeouts and connection errors (never on other 4xx), up to `num_retries`
(or the deployment's `max_retries`) more attempts, preferring another healthy deployment, with exponential
backoff that honours Retry-After. After `allowed_fails` consecutive failures a deployment cools down for
`cooldown_time`. When a group is exhausted, its fallback groups are tried in order.
Streams: failures before the first chunk go through the same loop; after it, the caller ends the stream.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ailab.config import RouterSettings
from ailab.gateway.providers.base import MAX_RETRY_AFTER, Provider
from ailab.gateway.types import Deployment, StreamItem, UpstreamError
from ailab.observability import Metrics

Call = Callable[[Provider], Awaitable[Any]]


class NoDeploymentAvailable(Exception):
    def __init__(self, group: str, retry_after: float) -> None:
        super().__init__(f"no deployment of model {group!r} is available (all cooling down or drained)")
        self.group = group
        self.retry_after = retry_after


@dataclass
class Attempt:
    """What happened while serving one request; the ledger and metrics read it."""

    group: str
    deployment: Deployment | None = None
    retries: int = 0  # upstream calls after the first (retries and fallbacks), as the ledger records
    calls: int = 0
    fallbacks: int = 0
    upstream_started: float = 0.0
    errors: list[UpstreamError] = field(default_factory=list)
    busy: dict[str, float] = field(default_factory=dict)  # deployment id -> share of its busy time, s
    failed: list[tuple[str, str]] = field(default_factory=list)  # (deployment id, error) of each failed call

    def add_busy(self, dep: Deployment, token: tuple[float, float]) -> None:
        self.busy[dep.id] = self.busy.get(dep.id, 0.0) + dep.state.busy.stop(token)

    def path(self) -> str | None:
        """The deployments called, in order, each failure's error and ✓ for the one that answered, e.g.
        "a:openai/x#0 ✗timeout → b:openai/y#0 ✓" (the ledger interns it); None after a single call."""
        if self.calls <= 1:
            return None
        steps = [f"{dep} ✗{error}" for dep, error in self.failed]
        if len(self.failed) < self.calls and self.deployment is not None:
            steps.append(f"{self.deployment.id} ✓")
        return " → ".join(steps)[:400]  # ledger_dims.value's width

    def billed_s(self) -> float:
        """The serving deployment's busy time shared to this request: what a time-priced deployment bills
        (Retry-After sleeps and time on other deployments are not in it)."""
        dep = self.deployment
        return 0.0 if dep is None else self.busy.get(dep.id, 0.0)


def _error_label(exc: UpstreamError) -> str:
    """A failed call in a fallback path: the HTTP status, or timeout / connection / protocol."""
    return str(exc.status) if exc.kind == "http" and exc.status else exc.kind


@dataclass
class StreamStart:
    first: StreamItem
    rest: AsyncIterator[StreamItem]
    provider: Provider
    attempt: Attempt | None = None
    busy_token: tuple[float, float] | None = None

    def release(self) -> None:
        """The relay is done with the deployment (call once, when the stream ends)."""
        dep = self.provider.deployment
        dep.state.in_flight -= 1
        if self.attempt is not None and self.busy_token is not None:
            self.attempt.add_busy(dep, self.busy_token)
            self.busy_token = None
            dep.state.busy.observe(time.perf_counter() - self.attempt.upstream_started)


class Router:
    def __init__(
        self,
        groups: dict[str, list[Deployment]],
        providers: dict[str, Provider],
        settings: RouterSettings,
        metrics: Metrics,
    ) -> None:
        self.groups = groups
        self.providers = providers  # deployment id → adapter instance
        self.settings = settings
        self.metrics = metrics
        self.fallbacks: dict[str, list[str]] = {}
        for rule in settings.fallbacks:
            for src, targets in rule.items():
                self.fallbacks.setdefault(src, []).extend(targets)

    # -- public ---------------------------------------------------------------------------------------

    def add_deployment(self, dep: Deployment, provider: Provider) -> None:
        """Serve one more deployment (in its group, created if new) through the given adapter."""
        if dep.id in self.providers:
            raise ValueError(f"deployment {dep.id!r} is already served")
        self.providers[dep.id] = provider
        self.groups.setdefault(dep.group, []).append(dep)

    async def call(
        self, group: str, call: Call, attempt: Attempt, extra_fallbacks: list[str] | None = None
    ) -> Any:
        # The caller passes the fallbacks the principal may reach; None means the configured ones.
        fallbacks = self.fallbacks.get(group, []) if extra_fallbacks is None else extra_fallbacks
        chain = [group, *[g for g in fallbacks if g in self.groups]]
        last: Exception | None = None
        for i, g in enumerate(chain):
            if i:
                attempt.fallbacks += 1
                self.metrics.fallbacks.labels(group).inc()
            try:
                return await self._call_group(g, call, attempt)
            except UpstreamError as exc:
                last = exc
                if not exc.retryable:
                    raise
            except NoDeploymentAvailable as exc:
                last = exc
        assert last is not None
        raise last

    async def open_stream(
        self,
        group: str,
        opener: Callable[[Provider], AsyncIterator[StreamItem]],
        attempt: Attempt,
        extra_fallbacks: list[str] | None = None,
    ) -> StreamStart:
        """Open a provider stream through the routing loop: a failure before the first item is retried
        or falls back like a unary call."""

        async def start(provider: Provider) -> StreamStart:
            it = aiter(opener(provider))
            try:
                first = await anext(it)
            except StopAsyncIteration:
                raise UpstreamError(
                    "upstream closed the stream without data", kind="protocol", status=502
                ) from None
            dep = provider.deployment
            dep.state.in_flight += 1  # held until the relay finishes (least-busy counts streams)
            return StreamStart(first, it, provider, attempt, dep.state.busy.start())

        result: StreamStart = await self.call(group, start, attempt, extra_fallbacks)
        return result

    # -- one group ------------------------------------------------------------------------------------

    async def _call_group(self, group: str, call: Call, attempt: Attempt) -> Any:
        deployments = self.groups[group]
        budget: int | None = None
        tried: set[str] = set()
        n = 0
        while True:
            dep = self.pick(group, avoid=tried)
            if dep is None:
                if n:  # our own failures cooled the group down: report what the upstream said
                    raise attempt.errors[-1]
                raise NoDeploymentAvailable(group, self._cooldown_left(deployments))
            if budget is None:
                budget = dep.max_retries if dep.max_retries is not None else self.settings.num_retries
            attempt.deployment = dep
            if attempt.calls:
                # Counted when the call is made, not when it is planned: a retry that finds every
                # deployment cooling down (other requests' failures) made no call and is no retry.
                attempt.retries += 1
                self.metrics.retries.labels(group).inc()
            attempt.calls += 1
            attempt.upstream_started = time.perf_counter()
            dep.state.in_flight += 1
            busy = dep.state.busy.start()
            try:
                result = await call(self.providers[dep.id])
            except UpstreamError as exc:
                attempt.errors.append(exc)
                attempt.failed.append(
                    (dep.id, str(exc.status) if exc.kind == "http" and exc.status else exc.kind)
                )
                self._failed(dep, exc, attempt.upstream_started)
                if not exc.retryable or n >= budget:
                    raise
                n += 1
                tried.add(dep.id)
                await self._backoff(n, exc, same=self._only_choice(group, tried, dep))
                continue
            finally:
                dep.state.in_flight -= 1
                attempt.add_busy(dep, busy)
            if not isinstance(result, StreamStart):  # a stream is observed when its relay ends
                dep.state.busy.observe(time.perf_counter() - attempt.upstream_started)
            self._succeeded(dep, attempt.upstream_started)
            return result

    def pick(self, group: str, avoid: set[str] | None = None) -> Deployment | None:
        now = time.monotonic()
        # weight 0 drains a deployment (LiteLLM's convention): it gets no traffic at all.
        healthy = [d for d in self.groups[group] if d.state.cooldown_until <= now and d.weight != 0]
        if avoid:
            fresh = [d for d in healthy if d.id not in avoid]
            healthy = fresh or healthy
        if not healthy:
            return None
        if len(healthy) == 1:
            return healthy[0]
        return self._strategy(healthy)

    def _strategy(self, healthy: list[Deployment]) -> Deployment:
        s = self.settings.routing_strategy
        if s == "least-busy":
            low = min(d.state.in_flight for d in healthy)
            return random.choice([d for d in healthy if d.state.in_flight == low])
        if s == "latency-based-routing":
            # Unmeasured deployments (ewma 0) are tried first so every one gets measured.
            return min(healthy, key=lambda d: (d.state.latency_ewma, random.random()))
        if s.startswith("usage-based-routing"):
            minute = int(time.time() // 60)
            return min(
                healthy,
                key=lambda d: (d.state.minute_tokens if d.state.minute == minute else 0, random.random()),
            )
        weights = [d.weight if d.weight is not None else d.rpm or d.tpm or 1 for d in healthy]
        return random.choices(healthy, weights=weights)[0]

    def _only_choice(self, group: str, tried: set[str], dep: Deployment) -> bool:
        nxt = self.pick(group, avoid=tried)
        return nxt is None or nxt is dep

    async def _backoff(self, n: int, exc: UpstreamError, same: bool) -> None:
        if not same:
            return  # another deployment is available: retry at once (A's Retry-After is A's business)
        delay = self.settings.retry_backoff * (2 ** (n - 1))
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        await asyncio.sleep(min(delay, self.settings.max_retry_delay))

    # -- health bookkeeping ---------------------------------------------------------------------------

    def _succeeded(self, dep: Deployment, started: float) -> None:
        st = dep.state
        elapsed = time.perf_counter() - started
        st.latency_ewma = elapsed if st.latency_ewma == 0 else 0.8 * st.latency_ewma + 0.2 * elapsed
        st.consecutive_fails = 0
        st.last_ok = time.time()

    def _failed(self, dep: Deployment, exc: UpstreamError, started: float) -> None:
        st = dep.state
        st.last_error = exc.kind if exc.status is None else f"{exc.kind} {exc.status}"
        st.last_error_at = time.time()
        self.metrics.upstream_errors.labels(dep.id, exc.kind).inc()
        if not exc.retryable:
            return  # a bad request says nothing about the deployment's health
        st.consecutive_fails += 1
        if st.consecutive_fails > self.settings.allowed_fails:
            self._cool_down(dep, exc)

    def _cool_down(self, dep: Deployment, exc: UpstreamError) -> None:
        if self.settings.cooldown_time <= 0:
            return
        length = max(self.settings.cooldown_time, min(exc.retry_after or 0.0, MAX_RETRY_AFTER))
        dep.state.cooldown_until = time.monotonic() + length
        dep.state.consecutive_fails = 0
        self.metrics.cooldowns.labels(dep.id).inc()

    def add_tokens(self, dep: Deployment, tokens: int) -> None:
        minute = int(time.time() // 60)
        st = dep.state
        if st.minute != minute:
            st.minute, st.minute_tokens = minute, 0
        st.minute_tokens += tokens

    @staticmethod
    def _cooldown_left(deployments: list[Deployment]) -> float:
        now = time.monotonic()
        return max(0.0, min((d.state.cooldown_until for d in deployments), default=now) - now)
