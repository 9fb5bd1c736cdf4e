"""What a caller may hand out: a new key, a role or a key for someone else never holds more than the caller.

- A key made by a key is a subset of it: its project, models, expiry and limits are the parent's or narrower
  (omitted ones are inherited), and it is revoked with its parent.
- A key made in a session (or by a key) sets limits only where it narrows one that already binds the caller,
  unless the caller holds `budgets.manage`.
- Roles given and keys made for others: the target may not hold a permission the caller lacks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from ailab.access.policy import holds
from ailab.access.principal import Principal
from ailab.access.records import Limits

# Budget periods from the longest (lifetime: never resets) to the shortest; a budget that resets more often
# lets more money through than the same amount over a longer period.
_PERIOD_RANK = {None: 0, "monthly": 1, "weekly": 2, "daily": 3}
_SHOWN = 8


class GrantDenied(Exception):
    """The caller may not grant this; the message says what and why (a 403)."""


@dataclass(frozen=True)
class KeyGrant:
    project_id: str | None
    models: list[str] | None  # None: every model; []: none
    expires_ms: int | None
    limits: Limits
    parent_id: str | None = None


def unknown_models(models: Iterable[str], served: Collection[str]) -> list[str]:
    return sorted({m for m in models if m not in served})


def check_models_served(models: list[str] | None, served: Collection[str]) -> None:
    missing = unknown_models(models or [], served)
    if missing:
        shown = ", ".join(repr(m[:100]) for m in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise ValueError(f"models: no model group named {shown}{more} is served by this lab")


def bound_key(caller: Principal, asked: KeyGrant, *, may_budget: bool) -> KeyGrant:
    """The key the caller may make for `asked` (inheriting the parent key's bounds), or GrantDenied."""
    if not may_budget:
        _limits_only_narrow(caller, asked.limits)
    if caller.kind != "key":
        return asked
    return replace(
        asked,
        project_id=_project(caller, asked.project_id),
        models=_models(caller, asked.models),
        expires_ms=_expiry(caller, asked.expires_ms),
        limits=_within_parent(caller, asked.limits),
        parent_id=caller.key_id,
    )


def check_outranks(caller: Principal, target_permissions: frozenset[str], what: str) -> None:
    """The caller may act on (or create) `what` only if it holds every permission `what` would hold."""
    if "*" in caller.permissions:
        return
    if "*" in target_permissions:
        raise GrantDenied(
            f"{caller.name} is not an administrator and may not act on {what} (an administrator)"
        )
    lacking = sorted(p for p in target_permissions if not holds(caller, p))
    if lacking:
        raise GrantDenied(f"{caller.name} lacks {', '.join(lacking)}, which {what} would hold")


def _project(caller: Principal, asked: str | None) -> str | None:
    if caller.project_id is None:
        return asked
    if asked not in (None, caller.project_id):
        raise GrantDenied(f"a key bound to project {caller.project_id} may only create keys bound to it")
    return caller.project_id


def _models(caller: Principal, asked: list[str] | None) -> list[str] | None:
    if caller.allowed_models is None:
        return asked
    if asked is None:
        return sorted(caller.allowed_models)
    extra = sorted(set(asked) - caller.allowed_models)
    if extra:
        raise GrantDenied(f"this key may not use {', '.join(repr(m[:100]) for m in extra[:_SHOWN])}")
    return asked


def _expiry(caller: Principal, asked: int | None) -> int | None:
    if caller.expires_ms is None:
        return asked
    if asked is None:
        return caller.expires_ms
    if asked > caller.expires_ms:
        raise GrantDenied("a key may not create a key that expires after it does")
    return asked


def _parent_limits(caller: Principal) -> Limits:
    for scope in caller.limits:
        if scope.kind == "key" and scope.id == caller.key_id:
            return Limits(scope.max_budget_pusd, scope.budget_duration, scope.rpm, scope.tpm)
    return Limits()


def _within_parent(caller: Principal, asked: Limits) -> Limits:
    parent = _parent_limits(caller)
    out = asked
    for name in ("rpm", "tpm"):
        bound, value = getattr(parent, name), getattr(asked, name)
        if bound is None:
            continue
        if value is None:
            out = replace(out, **{name: bound})
        elif value > bound:
            raise GrantDenied(f"{name}: {value} is more than this key's own {name} ({bound})")
    if parent.max_budget_pusd is not None:
        if asked.max_budget_pusd is None:
            out = replace(out, max_budget_pusd=parent.max_budget_pusd, budget_duration=parent.budget_duration)
        elif not _budget_within(asked, parent):
            raise GrantDenied("max_budget_usd: more than this key's own budget (or over a shorter period)")
    return out


def _budget_within(asked: Limits, bound: Limits) -> bool:
    assert asked.max_budget_pusd is not None and bound.max_budget_pusd is not None
    return (
        asked.max_budget_pusd <= bound.max_budget_pusd
        and _PERIOD_RANK[asked.budget_duration] <= _PERIOD_RANK[bound.budget_duration]
    )


def _limits_only_narrow(caller: Principal, asked: Limits) -> None:
    """Without budgets.manage a limit may only narrow one that already binds the caller."""
    bounds = [Limits(s.max_budget_pusd, s.budget_duration, s.rpm, s.tpm) for s in caller.limits]
    for name in ("rpm", "tpm"):
        value = getattr(asked, name)
        if value is None:
            continue
        if not any(getattr(b, name) is not None and value <= getattr(b, name) for b in bounds):
            raise GrantDenied(
                f"{name}: setting a limit above the ones that bind you (or where none does) needs "
                "budgets.manage"
            )
    if asked.max_budget_pusd is not None and not any(
        b.max_budget_pusd is not None and _budget_within(asked, b) for b in bounds
    ):
        raise GrantDenied(
            "max_budget_usd: setting a budget above the ones that bind you (or where none does) needs "
            "budgets.manage"
        )
    if asked.budget_duration is not None and asked.max_budget_pusd is None:
        raise GrantDenied("budget_duration: needs max_budget_usd (or budgets.manage)")
