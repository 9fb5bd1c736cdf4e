"""The component catalog: one module per component (or per tightly-coupled set, like Dify's services).

Built-in modules register the same way a plugin would: each is an `ailab.components` entry point (see
`ailab.plugins`) naming a module that exposes `COMPONENT` or `COMPONENTS` (or a Component, or a list).
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any

from ailab import plugins
from ailab.stack.model import Component

PHASES = (1, 2, 3, 4)


class UnknownComponent(LookupError):
    pass


@cache
def catalog() -> dict[str, Component]:
    found: dict[str, Component] = {}

    def add(plugin: plugins.Plugin, obj: Any) -> None:
        comps = components_of(obj)
        for comp in comps:
            if comp.name in found:
                raise ValueError(f"component {comp.name} is declared twice (again by {plugin})")
        found.update((c.name, c) for c in comps)

    plugins.each(plugins.COMPONENTS, add)
    return dict(sorted(found.items()))


def components_of(obj: Any) -> list[Component]:
    """What an `ailab.components` entry point names: a module, a Component or a list of them."""
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "COMPONENTS", None) or obj.COMPONENT
    comps = [obj] if isinstance(obj, Component) else list(obj)
    bad = [c for c in comps if not isinstance(c, Component)]
    if bad:
        raise TypeError(f"not a Component: {bad[0]!r}")
    return comps


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """Names, groups (`dify`), `phase1`…`phase4` and `all` -> component names, with their dependencies.

    `phaseN` means the components the seed places in phase N plus what they need to run.
    """
    return with_dependencies(members(names))


def members(names: list[str] | tuple[str, ...]) -> list[str]:
    """Like `expand`, without the dependencies."""
    cat = catalog()
    wanted: list[str] = []
    for name in names:
        if name == "all":
            wanted += list(cat)
        elif name.startswith("phase") and name[5:].isdigit() and int(name[5:]) in PHASES:
            wanted += [c.name for c in cat.values() if c.phase == int(name[5:])]
        elif any(c.group == name for c in cat.values()):
            wanted += [c.name for c in cat.values() if c.group == name]
        elif name in cat:
            wanted.append(name)
        else:
            raise UnknownComponent(
                f"unknown component {name!r}; see `ailab components` (or use phase1..phase4, all)"
            )
    return sorted(set(wanted))


def with_dependencies(names: list[str]) -> list[str]:
    cat = catalog()
    seen: dict[str, None] = {}
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen[name] = None
        stack += cat[name].depends_on
    return sorted(seen)


def select(names: list[str]) -> dict[str, Component]:
    cat = catalog()
    return {n: cat[n] for n in with_dependencies(names)}
