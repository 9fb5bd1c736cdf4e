"""Limiter shared by every gateway process through one Redis: each acquire() and settle() is one Lua script
(EVALSHA), so the checks and reservations of all scopes of a request are atomic across processes. The
scripts that requests of one process start in the same event-loop turn go to Redis as one pipeline (one
connection taken, one write, one read loop): under concurrency most of the client's cost a call."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from ailab.limits import lua
from ailab.limits.base import (
    DEFAULT_RESERVATION_TTL_S,
    WINDOW_S,
    Heartbeat,
    LimiterUnavailable,
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

WINDOW_KEY_TTL_S = 120  # two windows: idle scopes vanish, active ones are refreshed on every request
SETTLED_MARKER_S = 60.0  # how long a settled reservation is remembered to make a retried settle a no-op
_DAY = 86400
MAX_PIPELINE = 256  # scripts sent in one pipeline at most; more wait for the next one


class _Pipeliner:
    """Coalesces the script calls made in one event-loop turn into one non-transactional pipeline. Each
    script still runs atomically on its own in Redis; only the round trips are shared."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[Any, list[str], list[str], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, script: Any, keys: list[str], args: list[str]) -> Any:
        if not isinstance(script, AsyncScript):  # a wrapped script (tests): called as it is
            return await script(keys=keys, args=args)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, fut))
        if len(self._pending) == 1:  # the first call of this turn schedules the send, after the turn
            loop.call_soon(self._start)
        return await fut

    def _start(self) -> None:
        batch, self._pending = self._pending[:MAX_PIPELINE], self._pending[MAX_PIPELINE:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._start)
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Any, list[str], list[str], asyncio.Future[Any]]]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        except BaseException as err:  # no reply at all (Redis down, closed): every call of the batch fails
            for *_, fut in batch:
                if not fut.done():
                    fut.cancel() if isinstance(err, asyncio.CancelledError) else fut.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        for (script, keys, args, fut), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis restarted: the script object loads and runs it
                try:
                    result = await script(keys=keys, args=args)
                except Exception as err:
                    result = err
            if fut.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def close(self) -> None:
        """Let the pipelines in flight finish (their callers are waiting for them)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def redact_url(url: str) -> str:
    """scheme://host:port/db without user or password: safe for logs and error messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _RedisReservation(Reservation):
    __slots__ = ("keys", "owner", "plan")

    def __init__(
        self,
        owner: RedisLimiter,
        base: tuple[str, float, tuple[Scope, ...], int, int],
        keys: list[str],
        plan: list[str],
    ) -> None:
        super().__init__(*base)
        self.owner = owner
        self.keys = keys  # six per scope; the spend keys of the period current at acquire time
        self.plan = plan  # per scope: tpm reserved ('1'/'0'), spend key EXPIREAT ('-' no budget, '0' never)


class RedisLimiter:
    def __init__(
        self,
        url: str,
        prefix: str = "ailab:limits:",
        *,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = DEFAULT_RESERVATION_TTL_S,
        timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self._where = redact_url(url)
        self._password = urlsplit(url).password if "@" in url else None
        self._prefix = prefix
        self._clock = clock
        self._ttl = reservation_ttl
        self._periods = PeriodCache()
        # Fail fast on the hot path: short timeouts and a single immediate retry, on connection errors only
        # (a pooled connection that Redis closed); timeouts are not retried as the script may have run.
        # Both scripts are idempotent per request id, so that one retry cannot count anything twice.
        # A blocking pool: a burst beyond max_connections waits (up to `timeout`) for a free connection
        # instead of failing at once with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis: Redis = Redis.from_pool(pool)
        self._acquire_lua = self._redis.register_script(lua.ACQUIRE)
        self._settle_lua = self._redis.register_script(lua.SETTLE)
        self._restore_lua = self._redis.register_script(lua.RESTORE)
        self._extend_lua = self._redis.register_script(lua.EXTEND)
        self._pipeliner = _Pipeliner(self._redis)
        self._open: dict[str, _RedisReservation] = {}  # budget reservations not settled yet
        self._heartbeat = Heartbeat(self.refresh, reservation_ttl / 3)
        self._epoch = f"{prefix}epoch"
        # Reseeds every budget's spend from the ledger (server.budgets); without one, a store that lost its
        # state starts again from zero.
        self.on_state_lost: Callable[[], Awaitable[None]] | None = None
        self._recovering = asyncio.Lock()

    def _unavailable(self, err: BaseException) -> NoReturn:
        detail = str(err)
        if self._password:
            detail = detail.replace(self._password, "***")
        raise LimiterUnavailable(
            f"rate-limit store unavailable (Redis at {self._where}): {type(err).__name__}: {detail}"
        ) from err

    def _keys(self, scope: Scope, period: str) -> list[str]:
        base = f"{self._prefix}{scope.kind}:{scope.id}:"
        return [
            base + "rpm",
            base + "tpm",
            base + "tpmv",
            f"{base}spend:{period}",
            # In-flight reservations belong to no period: one that spans midnight is held against the new day.
            base + "res",
            base + "resv",
        ]

    def _spend_expireat(self, scope: Scope, now: float) -> str:
        # Keep a period's spend a day past its end: a request that started before midnight settles into it.
        end = self._periods.get(scope.budget_duration, now)[1]
        return "0" if math.isinf(end) else str(math.ceil(end) + _DAY)

    async def _eval(self, script: Any, keys: list[str], args: list[str]) -> list[str]:
        try:
            result: list[str] = await self._pipeliner.call(script, keys, args)
        except (RedisError, OSError) as err:
            self._unavailable(err)
        return result

    async def acquire(self, scopes: Sequence[Scope], est_tokens: int, est_cost_pusd: int) -> Reservation:
        check_amounts(est_tokens, est_cost_pusd)
        active = active_scopes(scopes)
        now = self._clock()
        # Random ids: unique across gateway processes without coordination.
        base = (os.urandom(8).hex(), now, active, est_tokens, est_cost_pusd)
        res = _RedisReservation(self, base, [], [])
        args = [repr(now), repr(now - WINDOW_S), res.id, str(est_tokens), str(est_cost_pusd)]
        args += [repr(now + self._ttl), str(math.ceil(self._ttl) + WINDOW_KEY_TTL_S), str(WINDOW_KEY_TTL_S)]
        for scope in active:
            res.keys += self._keys(scope, self._periods.get(scope.budget_duration, now)[2])
            args += [_opt(scope.rpm), _opt(scope.tpm), _opt(scope.max_budget_pusd)]
            has_budget = scope.max_budget_pusd is not None
            res.plan += [
                "1" if scope.tpm is not None else "0",
                self._spend_expireat(scope, now) if has_budget else "-",
            ]
        if not active:
            return res
        keys = [*res.keys, self._epoch]
        failed = await self._eval(self._acquire_lua, keys, args)
        if failed and failed[1] == "lost":
            await self._recover()
            failed = await self._eval(self._acquire_lua, keys, args)
            if failed and failed[1] == "lost":
                self._unavailable(RedisError("budget spend was lost and could not be restored"))
        if failed and failed[1] == "ok":
            _read_rates(res, failed[2:], now)
        elif failed:
            self._raise_exceeded(failed, active, now, est_tokens, est_cost_pusd)
        if any(s.max_budget_pusd is not None for s in active):
            self._open[res.id] = res
            self._heartbeat.start()
        return res

    async def refresh(self) -> None:
        """Extend the reservations of the requests still in flight, 200 per script call."""
        pairs = [
            (res.id, res.keys[i + 4 : i + 6])
            for res in list(self._open.values())
            for i in range(0, len(res.keys), 6)
            if res.plan[i // 6 * 2 + 1] != "-"
        ]
        expiry = repr(self._clock() + self._ttl)
        rttl = str(math.ceil(self._ttl) + WINDOW_KEY_TTL_S)
        for start in range(0, len(pairs), 200):
            chunk = pairs[start : start + 200]
            keys = [k for _, ks in chunk for k in ks]
            await self._eval(self._extend_lua, keys, [expiry, rttl, *(rid for rid, _ in chunk)])

    async def _recover(self) -> None:
        """The store lost its state (restart, eviction): reseed spend once, while every request with a budget
        waits; those that waited find the epoch back and go on."""
        async with self._recovering:
            if not await self.lost_state():
                return
            if self.on_state_lost is not None:
                await self.on_state_lost()
            else:
                await self.restore_spend([])

    async def lost_state(self) -> bool:
        """True when the store holds no epoch: it restarted empty (or never was seeded)."""
        try:
            return not await self._redis.exists(self._epoch)
        except (RedisError, OSError) as err:
            self._unavailable(err)

    async def restore_spend(self, spends: Sequence[tuple[Scope, int]]) -> None:
        """Overwrite the current period's spend of each scope and write the epoch, in one script, unless
        another process did so first (the epoch is back)."""
        now = self._clock()
        keys: list[str] = []
        args = [os.urandom(8).hex()]
        for scope, spent in spends:
            if scope.max_budget_pusd is None:
                continue
            if spent < 0:
                raise ValueError(f"restored spend of {scope.label} must be >= 0, not {spent}")
            keys.append(self._spend_key(scope, now))
            args += [str(spent), self._spend_expireat(scope, now)]
        await self._eval(self._restore_lua, [*keys, self._epoch], args)

    def _raise_exceeded(
        self, failed: list[str], active: tuple[Scope, ...], now: float, est_tokens: int, est_cost: int
    ) -> NoReturn:
        scope = active[int(failed[0]) - 1]
        kind, a, b = failed[1], failed[2], failed[3]
        if kind == "budget":
            end = self._periods.get(scope.budget_duration, now)[1]
            raise budget_exceeded(scope, int(a), int(b), est_cost, now, end)
        # Clamped: another process's entry may be scored after this request's `now` (taken before the wait
        # for a connection), and no window entry lives longer than the window.
        retry = min(WINDOW_S, max(0.0, float(b) + WINDOW_S - now)) if b else WINDOW_S
        if kind == "rpm":
            raise rpm_exceeded(scope, retry)
        raise tpm_exceeded(scope, int(float(a)), est_tokens, retry)

    async def settle(
        self, res: Reservation, tokens: int, cost_pusd: int | None, at: float | None = None
    ) -> None:
        if not isinstance(res, _RedisReservation) or res.owner is not self:
            raise ValueError(f"{res!r} was not made by this RedisLimiter")
        if not res.scopes or not res.claim_settle():
            return
        now = self._clock()
        when = now if at is None else at
        keys, plan = list(res.keys), list(res.plan)
        for i, scope in enumerate(res.scopes):
            if plan[2 * i + 1] != "-":  # the cost counts in the period its ledger row lands in
                keys[6 * i + 3] = self._spend_key(scope, when)
                plan[2 * i + 1] = self._spend_expireat(scope, when)
        args = [repr(now), repr(now - WINDOW_S), res.id, str(max(0, tokens)), str(max(0, cost_pusd or 0))]
        args += [str(WINDOW_KEY_TTL_S), str(math.ceil(self._ttl) + WINDOW_KEY_TTL_S)]
        args += [repr(now + SETTLED_MARKER_S), *plan]
        # No longer extended, settled or not: a settle that failed is retried by its caller or left to the
        # reservation's TTL.
        self._open.pop(res.id, None)
        try:
            await self._eval(self._settle_lua, [*keys, self._epoch], args)
        except LimiterUnavailable:
            # Retrying is safe even if the script did run: it remembers settled ids for a minute.
            res.unclaim_settle()
            raise

    def _spend_key(self, scope: Scope, now: float) -> str:
        return self._keys(scope, self._periods.get(scope.budget_duration, now)[2])[3]

    async def seed_spend(self, scope: Scope, spent_pusd: int) -> None:
        if spent_pusd < 0:
            raise ValueError(f"seeded spend of {scope.label} must be >= 0, not {spent_pusd}")
        if scope.max_budget_pusd is None:
            return  # spend is tracked for budgeted scopes only
        now = self._clock()
        expireat = self._spend_expireat(scope, now)
        try:
            await self._redis.set(
                self._spend_key(scope, now),
                str(spent_pusd),
                nx=True,
                exat=None if expireat == "0" else int(expireat),
            )
        except (RedisError, OSError) as err:
            self._unavailable(err)

    async def spent(self, scope: Scope) -> int:
        if scope.max_budget_pusd is None:
            return 0
        try:
            value = await self._redis.get(self._spend_key(scope, self._clock()))
        except (RedisError, OSError) as err:
            self._unavailable(err)
        return int(value or 0)

    async def close(self) -> None:
        await self._heartbeat.stop()
        await self._pipeliner.close()
        self._open.clear()
        await self._redis.aclose()


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _read_rates(res: _RedisReservation, fields: list[str], now: float) -> None:
    """The windows ACQUIRE read after counting the request: four fields per scope (see lua.ACQUIRE)."""
    for i, scope in enumerate(res.scopes):
        count, oldest, used, first = fields[4 * i : 4 * i + 4]
        if scope.rpm is not None and count:
            rate = Rate(scope.rpm, max(0, scope.rpm - int(count)), _reset(oldest, now))
            res.requests = tighter(res.requests, rate)
        if scope.tpm is not None and used:
            rate = Rate(scope.tpm, max(0, scope.tpm - int(used)), _reset(first, now))
            res.tokens = tighter(res.tokens, rate)


def _reset(oldest: str, now: float) -> float:
    # Clamped like a retry: another process's entry may be scored after this request's `now`.
    return min(WINDOW_S, max(0.0, float(oldest) + WINDOW_S - now)) if oldest else 0.0
