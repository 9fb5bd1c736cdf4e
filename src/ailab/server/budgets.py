"""Seed budget counters from the ledger, so spend survives restarts and is shared by every process; and
reseed them when the limiter's store lost its state (a Redis restarted without persistence)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ailab.ledger import spend_by
from ailab.limits import Limiter, LimiterUnavailable, Scope, period_start


async def seed_budgets(engine: Engine, limiter: Limiter, principals: list[Any]) -> None:
    """Each budgeted scope's spend this period, from the ledger. A store that holds state keeps its own
    (fresher) values and only gains missing ones; a store that lost its state is overwritten."""
    scopes = {(s.kind, s.id): s for p in principals for s in p.limits if s.max_budget_pusd is not None}
    lost = await limiter.lost_state()
    if not scopes and not lost:
        return
    spends = await _ledger_spend(engine, list(scopes.values()))
    if lost:
        await limiter.restore_spend(spends)
        return
    for scope, spent in spends:
        await limiter.seed_spend(scope, spent)


async def _ledger_spend(engine: Engine, scopes: list[Scope]) -> list[tuple[Scope, int]]:
    now = time.time()
    cache: dict[tuple[str, float], dict[str, int]] = {}
    out = []
    for scope in scopes:
        since = period_start(scope.budget_duration, now)
        if (scope.kind, since) not in cache:
            cache[(scope.kind, since)] = await asyncio.to_thread(spend_by, engine, scope.kind, since)
        out.append((scope, cache[(scope.kind, since)].get(scope.id, 0)))
    return out


def reseed_when_lost(
    engine: Engine,
    limiter: Limiter,
    principals: Callable[[], list[Any]],
    flush: Callable[[], None] | None = None,
) -> None:
    """Let the limiter reseed from the ledger when it finds its store empty. `flush` writes this process's
    pending ledger rows first, so that requests settled while the store was gone are in the sums."""

    async def reseed() -> None:
        if flush is not None:
            await asyncio.to_thread(flush)
        try:
            await seed_budgets(engine, limiter, principals())
        except SQLAlchemyError as err:  # no ledger, no spend to trust: requests with budgets wait (503)
            raise LimiterUnavailable(
                "budget spend was lost by the limits store and the ledger could not be read: "
                f"{type(err).__name__}"
            ) from err

    limiter.on_state_lost = reseed
