"""Seed budget counters from the ledger, so spend survives restarts and is shared by every process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Engine

from ailab.ledger.queries import spend_by
from ailab.limits import Limiter, period_start


async def seed_budgets(engine: Engine, limiter: Limiter, principals: list[Any]) -> None:
    scopes = {(s.kind, s.id): s for p in principals for s in p.limits if s.max_budget_pusd is not None}
    if not scopes:
        return
    now = time.time()
    cache: dict[tuple[str, float], dict[str, int]] = {}
    for (kind, ident), scope in scopes.items():
        since = period_start(scope.budget_duration, now)
        if (kind, since) not in cache:
            cache[(kind, since)] = await asyncio.to_thread(spend_by, engine, kind, since)
        await limiter.seed_spend(scope, cache[(kind, since)].get(ident, 0))
