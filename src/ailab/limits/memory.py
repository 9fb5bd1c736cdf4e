"""In-process limiter: exact and lock-free because everything runs on one asyncio event loop and acquire()
never awaits between checking and reserving. Per gateway process only; use RedisLimiter to share limits."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from ailab.limits.base import (
    DEFAULT_RESERVATION_TTL_S,
    WINDOW_S,
    Heartbeat,
    Rate,
    Reservation,
    Scope,
    active_scopes,
    budget_exceeded,
    check_amounts,
    rpm_exceeded,
    tighter,
    tpm_exceeded,
)
from ailab.limits.periods import PeriodCache


class _Entry:
    """One request's tokens in a tpm window; mutable so that settle() can swap the estimate for the real
    count in place, and `live` tells it whether the entry is still inside the window."""

    __slots__ = ("amount", "live", "ts")

    def __init__(self, ts: float, amount: int) -> None:
        self.ts = ts
        self.amount = amount
        self.live = True


class _Window:
    """Rolling window of token entries in arrival order with a running total (O(1) amortised checks)."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.total = 0

    def prune(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0].ts <= cutoff:
            old = entries.popleft()
            old.live = False
            self.total -= old.amount

    def add(self, ts: float, amount: int) -> _Entry:
        entry = _Entry(ts, amount)
        self.entries.append(entry)
        self.total += amount
        return entry

    def retry_after(self, need: int, now: float) -> float:
        """Seconds until entries totalling `need` tokens have left the window."""
        freed = 0
        for entry in self.entries:
            freed += entry.amount
            if freed >= need:
                return max(0.0, entry.ts + WINDOW_S - now)
        return WINDOW_S


class _Budget:
    """Settled spend of one scope in one period (`key`, e.g. 'd20240131')."""

    __slots__ = ("key", "spent")

    def __init__(self, key: str) -> None:
        self.key = key
        self.spent: int | None = None  # None: no value for this period yet, so seed_spend() may set one


class _Reserved:
    """Open reservations of one scope. They belong to no period: a request that spans midnight is held
    against the new day, where its cost will count (see settle)."""

    __slots__ = ("by_id", "total")

    def __init__(self) -> None:
        # reservation id -> (amount, expires at); insertion order is expiry order (one TTL, and a refresh
        # moves the entry to the end)
        self.by_id: dict[str, tuple[int, float]] = {}
        self.total = 0

    def prune(self, now: float) -> None:
        # Only a reservation whose request is gone (its process crashed) stops being refreshed and expires.
        by_id = self.by_id
        while by_id:
            rid = next(iter(by_id))
            amount, expires = by_id[rid]
            if expires > now:
                break
            del by_id[rid]
            self.total -= amount

    def extend(self, rid: str, expires: float) -> None:
        held = self.by_id.pop(rid, None)
        if held is not None:
            self.by_id[rid] = (held[0], expires)


class _State:
    __slots__ = ("budget", "requests", "reserved", "tokens")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens = _Window()
        self.budget: _Budget | None = None
        self.reserved = _Reserved()


class _Part:
    """What one acquire() recorded on one scope."""

    __slots__ = ("entry", "scope", "state")

    def __init__(self, scope: Scope, state: _State, entry: _Entry | None) -> None:
        self.scope = scope
        self.state = state
        self.entry = entry


class _MemReservation(Reservation):
    __slots__ = ("owner", "parts")

    def __init__(self, owner: MemoryLimiter, base: tuple[str, float, tuple[Scope, ...], int, int]) -> None:
        super().__init__(*base)
        self.owner = owner
        self.parts: tuple[_Part, ...] = ()


class MemoryLimiter:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = DEFAULT_RESERVATION_TTL_S,
    ) -> None:
        self._clock = clock
        self._ttl = reservation_ttl
        self._states: dict[tuple[str, str], _State] = {}
        self._periods = PeriodCache()
        self._ids = itertools.count(1)
        self.on_state_lost: Callable[[], Awaitable[None]] | None = None  # never called: see lost_state
        self._open: dict[str, _MemReservation] = {}  # budget reservations not settled yet
        self._heartbeat = Heartbeat(self.refresh, reservation_ttl / 3)

    def _state(self, scope: Scope) -> _State:
        key = (scope.kind, scope.id)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        return state

    def _budget(self, state: _State, scope: Scope, now: float) -> tuple[_Budget, float]:
        """The scope's budget state for the current period (a new period starts empty), and the period end."""
        _, end, key = self._periods.get(scope.budget_duration, now)
        budget = state.budget
        if budget is None or budget.key != key:
            budget = state.budget = _Budget(key)
        return budget, end

    def _check(self, scope: Scope, state: _State, now: float, est_tokens: int, est_cost: int) -> None:
        # Budget first: when both fail, "budget exhausted, resets in 5h" is the answer worth giving.
        if scope.max_budget_pusd is not None:
            budget, end = self._budget(state, scope, now)
            reserved = state.reserved
            reserved.prune(now)
            spent = budget.spent or 0
            # At least one pico-USD must be left: a spent (or zero) budget admits nothing, even a request
            # whose estimate is 0.
            if spent + reserved.total + max(est_cost, 1) > scope.max_budget_pusd:
                raise budget_exceeded(scope, spent, reserved.total, est_cost, now, end)
        cutoff = now - WINDOW_S
        if scope.rpm is not None:
            requests = state.requests
            while requests and requests[0] <= cutoff:
                requests.popleft()
            if len(requests) + 1 > scope.rpm:
                oldest_to_go = len(requests) - scope.rpm
                retry = requests[oldest_to_go] + WINDOW_S - now if scope.rpm > 0 else WINDOW_S
                raise rpm_exceeded(scope, max(0.0, retry))
        if scope.tpm is not None:
            window = state.tokens
            window.prune(cutoff)
            if window.total + est_tokens > scope.tpm:
                need = window.total + est_tokens - scope.tpm
                retry = window.retry_after(need, now) if est_tokens <= scope.tpm else WINDOW_S
                raise tpm_exceeded(scope, window.total, est_tokens, retry)

    async def acquire(self, scopes: Sequence[Scope], est_tokens: int, est_cost_pusd: int) -> Reservation:
        check_amounts(est_tokens, est_cost_pusd)
        active = active_scopes(scopes)
        now = self._clock()
        states = [self._state(s) for s in active]
        for scope, state in zip(active, states, strict=True):
            self._check(scope, state, now, est_tokens, est_cost_pusd)
        # Every check passed and nothing awaited since: record on all scopes (all-or-nothing).
        res = _MemReservation(self, (str(next(self._ids)), now, active, est_tokens, est_cost_pusd))
        rid = res.id
        parts: list[_Part] = []
        for scope, state in zip(active, states, strict=True):
            if scope.rpm is not None:
                state.requests.append(now)
                res.requests = tighter(res.requests, _requests_rate(scope.rpm, state, now))
            entry = state.tokens.add(now, est_tokens) if scope.tpm is not None else None
            if scope.tpm is not None:
                res.tokens = tighter(res.tokens, _tokens_rate(scope.tpm, state, now))
            if scope.max_budget_pusd is not None:
                state.reserved.by_id[rid] = (est_cost_pusd, now + self._ttl)
                state.reserved.total += est_cost_pusd
                self._open[rid] = res
            parts.append(_Part(scope, state, entry))
        res.parts = tuple(parts)
        if rid in self._open:
            self._heartbeat.start()
        return res

    async def settle(
        self, res: Reservation, tokens: int, cost_pusd: int | None, at: float | None = None
    ) -> None:
        self.settle_now(res, tokens, cost_pusd, at)

    def settle_now(
        self, res: Reservation, tokens: int, cost_pusd: int | None, at: float | None = None
    ) -> None:
        """`settle` without a coroutine: it never awaits, so the gateway calls it directly (no task for
        `asyncio.shield`, nothing a cancellation could cut in half)."""
        if not isinstance(res, _MemReservation) or res.owner is not self:
            raise ValueError(f"{res!r} was not made by this MemoryLimiter")
        if not res.claim_settle():
            return
        now = self._clock()
        self._open.pop(res.id, None)
        cost = cost_pusd or 0  # unknown price: count nothing, but still release the reservation
        for part in res.parts:
            state = part.state
            entry = part.entry
            if entry is not None:
                state.tokens.prune(now - WINDOW_S)  # first, so that `live` is up to date
                if entry.live:
                    state.tokens.total += tokens - entry.amount
                    entry.amount = tokens
                elif tokens:
                    # The request outlived the window: its real tokens count from now rather than never.
                    state.tokens.add(now, tokens)
            if part.scope.max_budget_pusd is not None:
                held = state.reserved.by_id.pop(res.id, None)
                if held is not None:
                    state.reserved.total -= held[0]
                # The cost counts in the period its ledger row lands in (`at`), which for a request that
                # spans midnight is the new day, not the one it started in.
                budget, _ = self._budget(state, part.scope, now if at is None else at)
                budget.spent = (budget.spent or 0) + cost

    async def refresh(self) -> None:
        """Extend the reservations of the requests still in flight (the heartbeat calls this)."""
        expires = self._clock() + self._ttl
        for res in list(self._open.values()):
            for part in res.parts:
                if part.scope.max_budget_pusd is not None:
                    part.state.reserved.extend(res.id, expires)

    async def seed_spend(self, scope: Scope, spent_pusd: int) -> None:
        if spent_pusd < 0:
            raise ValueError(f"seeded spend of {scope.label} must be >= 0, not {spent_pusd}")
        if scope.max_budget_pusd is None:
            return  # spend is tracked for budgeted scopes only
        budget, _ = self._budget(self._state(scope), scope, self._clock())
        if budget.spent is None:
            budget.spent = spent_pusd

    async def lost_state(self) -> bool:
        return False  # the counters live and die with this process, which seeds them at start

    async def restore_spend(self, spends: Sequence[tuple[Scope, int]]) -> None:
        now = self._clock()
        for scope, spent in spends:
            if scope.max_budget_pusd is not None:
                self._budget(self._state(scope), scope, now)[0].spent = spent

    async def spent(self, scope: Scope) -> int:
        if scope.max_budget_pusd is None:
            return 0
        budget, _ = self._budget(self._state(scope), scope, self._clock())
        return budget.spent or 0

    async def close(self) -> None:
        await self._heartbeat.stop()
        self._states.clear()
        self._open.clear()


def _requests_rate(rpm: int, state: _State, now: float) -> Rate:
    """The rpm window just after this request was counted (its checks pruned it already)."""
    requests = state.requests
    return Rate(rpm, max(0, rpm - len(requests)), max(0.0, requests[0] + WINDOW_S - now))


def _tokens_rate(tpm: int, state: _State, now: float) -> Rate:
    window = state.tokens
    return Rate(tpm, max(0, tpm - window.total), max(0.0, window.entries[0].ts + WINDOW_S - now))
