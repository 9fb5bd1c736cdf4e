"""The component catalog: one module per component (or per tightly-coupled set, like Dify's services).

Built-in modules register the same way a plugin would: a module exposes `COMPONENT` or `COMPONENTS`.
"""

from __future__ import annotations

import importlib
from functools import cache

from ailab.stack.model import Component

MODULES = (
    "ailab",
    "postgres",
    "redis",
    "qdrant",
    "ollama",
    "open_webui",
    "prometheus",
    "alertmanager",
    "grafana",
    "node_exporter",
    "cadvisor",
    "dify",
    "n8n",
    "node_red",
    "jupyter",
    "code_server",
    "vault",
    "milvus",
    "edge",
)
PHASES = (1, 2, 3, 4)


class UnknownComponent(LookupError):
    pass


@cache
def catalog() -> dict[str, Component]:
    found: dict[str, Component] = {}
    for module_name in MODULES:
        module = importlib.import_module(f"ailab.stack.catalog.{module_name}")
        comps = list(getattr(module, "COMPONENTS", [])) or [module.COMPONENT]
        for comp in comps:
            if comp.name in found:
                raise ValueError(f"component {comp.name} is declared twice")
            found[comp.name] = comp
    return dict(sorted(found.items()))


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
