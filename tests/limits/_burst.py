"""The burst: many concurrent acquire+settle tasks against one small budget. A module of its own so that
spawned worker processes can import it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ailab.limits import Limiter, LimitExceeded, RedisLimiter, Scope

UNIT = 10**8  # pico-USD
EST = 10 * UNIT  # every request reserves this much
MAX_OVER = 3 * UNIT  # ... and may really cost up to this much more


@dataclass
class BurstResult:
    admitted: int = 0
    rejected: int = 0
    charged: int = 0  # real cost of every admitted request, as settled
    # (acquire sent, settle returned) per admitted request, on the system-wide monotonic clock
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def merge(self, other: BurstResult) -> BurstResult:
        return BurstResult(
            self.admitted + other.admitted,
            self.rejected + other.rejected,
            self.charged + other.charged,
            self.intervals + other.intervals,
        )


def max_in_flight(intervals: list[tuple[float, float]]) -> int:
    """Most admitted requests ever between acquire and settle at once. Each interval spans the moment the
    limiter admitted the request to the moment it settled, so this bounds what the limiter saw in flight."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


async def burst(
    limiters: Sequence[Limiter],
    scopes: Sequence[Scope],
    n: int,
    seed: int,
    overshoot: bool = True,
    rounds: int = 3,
    spread: float = 0.02,
) -> BurstResult:
    out = BurstResult()

    async def one(i: int) -> None:
        # A client sending up to `rounds` requests one after the other, starting at a random moment, so
        # that acquires of some requests interleave with settles of others.
        rng = random.Random(seed * 100_003 + i)
        limiter = limiters[i % len(limiters)]
        await asyncio.sleep(rng.random() * spread)
        for _ in range(rounds):
            sent = time.monotonic()
            try:
                res = await limiter.acquire(scopes, 100, EST)
            except LimitExceeded as exc:
                assert exc.limit == "budget", exc.message
                out.rejected += 1
                return
            out.admitted += 1
            await asyncio.sleep(rng.random() * 0.005)
            real = EST + (rng.choice((0, 0, UNIT, MAX_OVER)) if overshoot else 0)
            await limiter.settle(res, 100, real)
            out.charged += real
            out.intervals.append((sent, time.monotonic()))

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


def redis_worker(url: str, scopes: list[Scope], n: int, seed: int, barrier: Any, queue: Any) -> None:
    """Entry point of a spawned process: one gateway process running a burst through its own RedisLimiter."""

    async def main() -> BurstResult:
        limiter = RedisLimiter(url)
        try:
            # Open the connections before the start line, so that neither process is slowed by that in the race.
            await asyncio.gather(*(limiter.spent(scopes[0]) for _ in range(64)))
            barrier.wait(10)
            # Arrivals spread over 0.3 s: both processes race for the budget even if the OS holds one
            # back for a few milliseconds.
            return await burst([limiter], scopes, n, seed, spread=0.3)
        finally:
            await limiter.close()

    queue.put(asyncio.run(main()))
