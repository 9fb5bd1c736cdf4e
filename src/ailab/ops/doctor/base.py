"""Checks, results and the runner: one check per runbook, each answering pass / warn / fail / skip.

A check is a plain function `DoctorContext -> Outcome`; the registry adds its name and runbook. Modules
register the way the stack catalog does: each is an `ailab.doctor` entry point (see `ailab.plugins`)
naming a module that exposes `CHECKS` (or a list of checks); built-ins run first, in declaration order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from ailab import plugins

if TYPE_CHECKING:
    from ailab.ops.doctor.context import DoctorContext

Status = Literal["pass", "warn", "fail", "skip"]
SEVERITY: dict[str, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}
RUNBOOKS = "docs/runbooks"


@dataclass(frozen=True)
class Outcome:
    """What one check found: its verdict, what it saw (one line, no secrets) and the fix to try first."""

    status: Status
    saw: str
    fix: str = ""


def passed(saw: str) -> Outcome:
    return Outcome("pass", saw)


def warn(saw: str, fix: str = "") -> Outcome:
    return Outcome("warn", saw, fix)


def fail(saw: str, fix: str = "") -> Outcome:
    return Outcome("fail", saw, fix)


def skip(why: str) -> Outcome:
    return Outcome("skip", why)


def worst(outcomes: Iterable[Outcome], saw: str, fix: str = "") -> Outcome:
    """One outcome summing several findings: the worst status, with the given text."""
    status: Status = max((o.status for o in outcomes), key=SEVERITY.__getitem__, default="pass")
    return Outcome(status, saw, fix)


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    runbook: str  # e.g. docs/runbooks/upstream-unreachable.md
    run: Callable[[DoctorContext], Outcome]


def check(name: str, title: str, runbook: str) -> Callable[[Callable[[DoctorContext], Outcome]], Check]:
    """Decorator: `@check("upstreams", "Upstreams reachable, keys accepted", "upstream-unreachable")`."""

    def wrap(fn: Callable[[DoctorContext], Outcome]) -> Check:
        return Check(name, title, f"{RUNBOOKS}/{runbook}.md", fn)

    return wrap


@dataclass(frozen=True)
class Result:
    name: str
    title: str
    status: Status
    saw: str
    runbook: str
    fix: str
    seconds: float

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "saw": self.saw,
            "fix": self.fix,
            "runbook": self.runbook,
            "seconds": round(self.seconds, 3),
        }


@cache
def all_checks() -> tuple[Check, ...]:
    found: dict[str, Check] = {}

    def add(plugin: plugins.Plugin, obj: Any) -> None:
        checks = list(obj.CHECKS if isinstance(obj, ModuleType) else obj)
        for c in checks:
            if not isinstance(c, Check):
                raise TypeError(f"not a doctor Check: {c!r}")
            if c.name in found:
                raise ValueError(f"doctor check {c.name} is declared twice (again by {plugin})")
        found.update((c.name, c) for c in checks)

    plugins.each(plugins.DOCTOR_CHECKS, add)
    return tuple(found.values())


def select_checks(only: Iterable[str] | None = None) -> list[Check]:
    checks = list(all_checks())
    if not only:
        return checks
    wanted = list(dict.fromkeys(only))
    known = {c.name for c in checks}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise KeyError(f"unknown check {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [c for c in checks if c.name in wanted]


def run_one(c: Check, ctx: DoctorContext) -> Result:
    t0 = time.perf_counter()
    try:
        out = c.run(ctx)
    except Exception as exc:  # a broken check is reported as a failure of that check, never hidden
        out = fail(f"the check itself failed: {type(exc).__name__}: {exc}")
    return Result(c.name, c.title, out.status, out.saw, c.runbook, out.fix, time.perf_counter() - t0)


def run_checks(ctx: DoctorContext, only: Iterable[str] | None = None, workers: int = 8) -> list[Result]:
    """Run the checks (concurrently: most wait on the network) and return results in registry order."""
    checks = select_checks(only)
    if not checks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(checks)))) as pool:
        return list(pool.map(lambda c: run_one(c, ctx), checks))
