"""What the console shows about the lab beside the ledger: names for ids (users, keys, projects), the
router's deployments with their state and prices, and budgets against their spend."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ailab.access import Limits
from ailab.gateway import Usage
from ailab.ledger import spend_by
from ailab.limits import period_start
from ailab.types import pusd_to_usd

if TYPE_CHECKING:
    from ailab.console.web import Viewer
    from ailab.gateway import Deployment
    from ailab.server.state import LabState


def names(state: LabState) -> dict[str, dict[str, str]]:
    """{"user": {id: username}, "key": {id: name or prefix}, "project": {id: name}}."""
    ident, keys = state.access.identity, state.access.keys
    return {
        "user": {u.id: u.username for u in ident.users()},
        "project": {p.id: p.name for p in ident.projects()},
        "key": {k.id: k.name or f"{k.prefix}…" for k in keys.keys(include_revoked=True)},
    }


def deployment_state(dep: Deployment, now: float | None = None) -> dict[str, Any]:
    st = dep.state
    now = time.monotonic() if now is None else now
    cooling = st.cooldown_until > now
    failing = not cooling and st.consecutive_fails > 0
    label = "cooling down" if cooling else "failing" if failing else "ok"
    return {
        "state": label,
        "cooldown_left_s": max(0.0, st.cooldown_until - now) if cooling else None,
        "in_flight": st.in_flight,
        "last_error": st.last_error,
        "last_error_ago_s": None if st.last_error_at is None else max(0.0, now - st.last_error_at),
        "latency_ms": round(st.latency_ewma * 1000) if st.latency_ewma else None,
    }


def _usd(pusd: int | None, unit: str) -> str | None:
    if pusd is None:
        return None
    return f"${pusd_to_usd(pusd):.4f}".rstrip("0").rstrip(".") + unit


def prices(state: LabState, dep: Deployment) -> dict[str, str | None]:
    """What the ledger charges for `dep`, asked of its own pricer: per 1M input and output tokens, or per
    hour of request time for models costed by GPU-hour or energy. None: no price known."""
    assert state.ledger is not None
    pricer = state.ledger.prices.pricer(dep)
    if is_local_costed(dep):
        return {"input": None, "output": None, "hourly": _usd(pricer(Usage(), 3600.0, False), "/h")}
    return {
        "input": _usd(pricer(Usage(prompt_tokens=10**6), 0.0, False), ""),
        "output": _usd(pricer(Usage(completion_tokens=10**6), 0.0, False), ""),
        "hourly": None,
    }


def is_local_costed(dep: Deployment) -> bool:
    """Costed by time (a GPU-hour price, or watts × energy price) rather than by token."""
    info = dep.info
    return info.cost_per_hour is not None or info.watts is not None


def deployments(state: LabState) -> list[dict[str, Any]]:
    router = state.router
    if router is None:
        return []
    now = time.monotonic()
    out = []
    for group, deps in sorted(router.groups.items()):
        for dep in deps:
            out.append(
                {
                    "group": group,
                    "id": dep.id,
                    "provider": dep.provider_label,
                    "model": dep.model,
                    "mode": dep.mode,
                    "api_base": dep.api_base,
                    "local": is_local_costed(dep),
                    "prices": prices(state, dep),
                    **deployment_state(dep, now),
                }
            )
    return out


@dataclass
class Budget:
    kind: str
    id: str
    name: str
    duration: str | None
    budget_pusd: int
    spend_pusd: int


def budgets(state: LabState, v: Viewer) -> list[Budget]:
    """Every budget the viewer may see (its own, its projects' and its keys'; all for administrators),
    with what was spent in the current period."""
    assert state.engine is not None
    everyone = v.may("usage.read.all")
    ident, uid = state.access.identity, v.principal.user_id
    scopes: list[tuple[str, str, str, Limits]] = []
    scopes += [("user", u.id, u.username, u.limits) for u in ident.users() if everyone or u.id == uid]
    mine = v.principal.projects
    scopes += [("project", p.id, p.name, p.limits) for p in ident.projects() if everyone or p.id in mine]
    keys = state.access.keys.keys(user_id=None if everyone else uid or "-")
    scopes += [("key", k.id, k.name or f"{k.prefix}…", k.limits) for k in keys]
    now, cache = time.time(), {}
    out = []
    for kind, ident_id, name, limits in scopes:
        if limits.max_budget_pusd is None:
            continue
        since = period_start(limits.budget_duration, now)
        if (kind, since) not in cache:
            cache[(kind, since)] = spend_by(state.engine, kind, since)
        spent = cache[(kind, since)].get(ident_id, 0)
        out.append(Budget(kind, ident_id, name, limits.budget_duration, limits.max_budget_pusd, spent))
    return out
