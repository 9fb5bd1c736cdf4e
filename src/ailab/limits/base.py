"""Types shared by the limiter backends: scopes, errors, reservations, the Limiter protocol, messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ailab.limits.periods import DURATIONS, period_noun
from ailab.types import pusd_to_usd

log = logging.getLogger(__name__)

WINDOW_S = 60.0  # rpm/tpm windows are rolling 60-second windows
# A reservation's lifetime without a refresh: the heartbeat extends those of live requests every third of
# it, so only a crashed process's reservations ever expire.
DEFAULT_RESERVATION_TTL_S = 600.0
# Retry-After for a lifetime budget, which never resets: a year says "do not retry" and overflows nothing.
LIFETIME_RETRY_AFTER_S = 365 * 86400.0
KINDS = ("key", "user", "project")


@dataclass(frozen=True, slots=True)
class Scope:
    """A budgeted or rate-limited entity. A limit of None is off; a scope without any limit is a no-op."""

    kind: str
    id: str
    rpm: int | None = None
    tpm: int | None = None
    max_budget_pusd: int | None = None
    budget_duration: str | None = None

    def __post_init__(self) -> None:
        # Validated once here so that the backends (and the Lua scripts) can trust every field.
        if self.kind not in KINDS:
            raise ValueError(f"scope kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.budget_duration is not None and self.budget_duration not in DURATIONS:
            raise ValueError(
                f"budget_duration of {self.kind} {self.id} must be daily, weekly, monthly or None, "
                f"not {self.budget_duration!r}"
            )
        for name in ("rpm", "tpm", "max_budget_pusd"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} of {self.kind} {self.id} must be >= 0, not {value}")

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_budget_pusd is not None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"


class LimitExceeded(Exception):
    """A request was refused by one scope's rpm, tpm or budget; nothing was reserved anywhere."""

    def __init__(self, scope: Scope, limit: str, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.limit = limit  # "rpm" | "tpm" | "budget"
        self.retry_after = retry_after
        self.message = message

    @property
    def rate(self) -> Rate | None:
        """The window that refused the request (nothing left, free again in retry_after); None for a
        budget."""
        if self.limit == "rpm" and self.scope.rpm is not None:
            return Rate(self.scope.rpm, 0, self.retry_after)
        if self.limit == "tpm" and self.scope.tpm is not None:
            return Rate(self.scope.tpm, 0, self.retry_after)
        return None


class LimiterUnavailable(Exception):
    """The limiter's store (Redis) could not be reached; the caller decides whether to fail closed."""


@dataclass(frozen=True, slots=True)
class Rate:
    """One rolling window as a client sees it after a request: its limit, what is left of it, and the
    seconds until the oldest entry counted leaves the window (when `remaining` next grows)."""

    limit: int
    remaining: int
    reset_s: float


def tighter(a: Rate | None, b: Rate | None) -> Rate | None:
    """The rate with less left (a key's and its user's limits both apply: the client meets the lower)."""
    if a is None or (b is not None and b.remaining < a.remaining):
        return b
    return a


class Reservation:
    """What one acquire() recorded, so that settle() can replace it with the real usage. Opaque to callers,
    except `requests` and `tokens`: the tightest rpm and tpm windows right after this request was counted
    (None without such a limit), for the gateway's x-ratelimit-* headers."""

    __slots__ = ("_settled", "created", "est_cost_pusd", "est_tokens", "id", "requests", "scopes", "tokens")

    def __init__(
        self, rid: str, created: float, scopes: tuple[Scope, ...], est_tokens: int, est_cost_pusd: int
    ) -> None:
        self.id = rid
        self.created = created
        self.scopes = scopes
        self.est_tokens = est_tokens
        self.est_cost_pusd = est_cost_pusd
        self._settled = False
        self.requests: Rate | None = None
        self.tokens: Rate | None = None

    @property
    def settled(self) -> bool:
        return self._settled

    def claim_settle(self) -> bool:
        """True exactly once: marks the reservation settled before any await, so two concurrent settle()
        calls cannot both count the usage."""
        if self._settled:
            return False
        self._settled = True
        return True

    def unclaim_settle(self) -> None:
        """The settle failed before taking effect (store unreachable): let the caller retry it."""
        self._settled = False

    def __repr__(self) -> str:
        names = ", ".join(s.label for s in self.scopes)
        return f"<Reservation {self.id} [{names}] tokens={self.est_tokens} cost_pusd={self.est_cost_pusd}>"


@runtime_checkable
class Limiter(Protocol):
    # Called (once, by the acquire that notices) when the store lost its state: reseeds spend from the ledger.
    on_state_lost: Callable[[], Awaitable[None]] | None

    async def acquire(self, scopes: Sequence[Scope], est_tokens: int, est_cost_pusd: int) -> Reservation: ...

    async def settle(
        self, res: Reservation, tokens: int, cost_pusd: int | None, at: float | None = None
    ) -> None:
        """Replace the estimate with the real usage; the cost counts in the budget period containing `at`
        (the ledger row's time; default now), which need not be the one the request started in."""

    async def refresh(self) -> None:
        """Extend the reservations of requests still in flight (the heartbeat does this on its own)."""

    async def seed_spend(self, scope: Scope, spent_pusd: int) -> None:
        """Set the current period's spend unless the store already has one (it is fresher than the ledger)."""

    async def lost_state(self) -> bool:
        """True when the store has no state to trust (a Redis that restarted empty)."""

    async def restore_spend(self, spends: Sequence[tuple[Scope, int]]) -> None:
        """Overwrite the current period's spend of each scope, and mark the store as holding state again
        (Redis: only if it still lost its state; the first process to restore wins)."""

    async def spent(self, scope: Scope) -> int: ...

    async def close(self) -> None: ...


def active_scopes(scopes: Sequence[Scope]) -> tuple[Scope, ...]:
    """Scopes that limit anything, first occurrence of each (kind, id) only: a scope listed twice must not
    be counted twice."""
    seen: set[tuple[str, str]] = set()
    out: list[Scope] = []
    for s in scopes:
        if s.limited and (s.kind, s.id) not in seen:
            seen.add((s.kind, s.id))
            out.append(s)
    return tuple(out)


def check_amounts(est_tokens: int, est_cost_pusd: int) -> None:
    if est_tokens < 0 or est_cost_pusd < 0:
        raise ValueError(f"estimates must be >= 0, got tokens={est_tokens} cost_pusd={est_cost_pusd}")


def usd(pusd: int) -> str:
    """Pico-USD as dollars: 4 decimals, more for sub-cent amounts so that they do not print as $0.0000."""
    d = pusd_to_usd(pusd)
    if pusd == 0 or d >= Decimal("0.0001"):
        return f"${d:.4f}"
    return f"${d.normalize():f}"


def human_duration(seconds: float) -> str:
    """'2d 5h', '5h 3m', '3m 10s', '12s' (rounded up: never tell a client to retry too early)."""
    s = max(0, math.ceil(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def rpm_exceeded(scope: Scope, retry_after: float) -> LimitExceeded:
    assert scope.rpm is not None
    msg = f"rate limit of {scope.label} reached: {scope.rpm:,} requests per minute"
    if scope.rpm == 0:
        msg = f"{scope.label} may not send requests: its rate limit is 0 requests per minute"
    return LimitExceeded(scope, "rpm", retry_after, f"{msg} (retry in {human_duration(retry_after)})")


def tpm_exceeded(scope: Scope, used: int, est_tokens: int, retry_after: float) -> LimitExceeded:
    assert scope.tpm is not None
    if est_tokens > scope.tpm:
        msg = (
            f"request needs up to {est_tokens:,} tokens, more than the limit of {scope.label}: "
            f"{scope.tpm:,} tokens per minute (lower max_tokens)"
        )
        return LimitExceeded(scope, "tpm", retry_after, msg)
    msg = (
        f"token rate limit of {scope.label} reached: {scope.tpm:,} tokens per minute, {used:,} used in the "
        f"last minute, this request needs up to {est_tokens:,} (retry in {human_duration(retry_after)})"
    )
    return LimitExceeded(scope, "tpm", retry_after, msg)


def budget_exceeded(
    scope: Scope, spent: int, reserved: int, est_cost: int, now: float, end: float
) -> LimitExceeded:
    assert scope.max_budget_pusd is not None
    limit = scope.max_budget_pusd
    when = period_noun(scope.budget_duration)
    if math.isinf(end):
        retry_after, resets = LIFETIME_RETRY_AFTER_S, "lifetime budget, does not reset"
    else:
        retry_after = max(0.0, end - now)
        resets = f"resets in {human_duration(retry_after)}"
    if limit == 0:
        msg = f"{scope.label} may not spend anything: its budget is {usd(0)}"
    elif spent >= limit:
        msg = f"budget of {scope.label} exhausted: {usd(spent)} of {usd(limit)} spent {when} ({resets})"
    else:
        in_flight = f", {usd(reserved)} reserved by requests in progress" if reserved else ""
        msg = (
            f"budget of {scope.label} would be exceeded: {usd(spent)} of {usd(limit)} spent {when}"
            f"{in_flight}, this request may cost up to {usd(est_cost)} ({resets})"
        )
    return LimitExceeded(scope, "budget", retry_after, msg)


class Heartbeat:
    """Runs `beat` every `interval` seconds while started, on the event loop that started it."""

    def __init__(self, beat: Callable[[], Awaitable[None]], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat()
            except LimiterUnavailable as err:  # the store is down: try again at the next beat
                log.warning("could not extend reservations: %s", err)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
