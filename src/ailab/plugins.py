"""Every extension point of the lab, named once. Built-ins register through the same entry points a third
party uses (`[project.entry-points."ailab.…"]` in pyproject.toml), as simonw/llm's `default_plugins` do.

| group               | an entry point names                                                        |
|---------------------|-----------------------------------------------------------------------------|
| `ailab.providers`   | `register(registry: ProviderRegistry) -> None` (adds adapters and aliases)   |
| `ailab.stores`      | a store factory `(root: Path, opts: dict) -> VectorStore`                    |
| `ailab.components`  | a module with `COMPONENT` or `COMPONENTS`, a `Component`, or a list of them   |
| `ailab.doctor`      | a module with `CHECKS`, or a list of `Check`                                 |
| `ailab.migrations`  | a list of `Migration`, or a callable returning one                          |

Order: the lab's own entry points first, then third-party ones, each sorted by entry-point name (installed
metadata does not keep the declaration order): where order matters built-ins are named `01-ledger` ….
A name is taken by the first that claims it (built-ins win); a later claimant is logged as an error and
ignored. A third-party plugin that fails to load or register is logged with its name and distribution and
skipped: it never stops the lab. A built-in that fails raises `PluginError`.

Built-ins are read from the installed metadata; in a source checkout from `pyproject.toml` itself, with a
warning when the installed metadata is stale (an old editable install: run `pip install -e .`).
"""

from __future__ import annotations

import importlib
import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROVIDERS = "ailab.providers"
STORES = "ailab.stores"
COMPONENTS = "ailab.components"
DOCTOR_CHECKS = "ailab.doctor"
MIGRATIONS = "ailab.migrations"
GROUPS = (PROVIDERS, STORES, COMPONENTS, DOCTOR_CHECKS, MIGRATIONS)

DIST = "local-ai-lab"  # our own distribution: its entry points are the built-ins
REINSTALL_HINT = "run `pip install -e .` (or `make install`) to refresh it"


class PluginError(RuntimeError):
    """A built-in plugin failed to load or register (a bug, or stale installed metadata)."""


@dataclass(frozen=True, slots=True)
class Plugin:
    group: str
    name: str
    value: str  # "module:attr" or "module"
    dist: str  # the distribution that declares it

    @property
    def builtin(self) -> bool:
        return _norm(self.dist) == DIST

    def load(self) -> Any:
        """The object the entry point names (imported once per process)."""
        return _load(self.value)

    def __str__(self) -> str:
        return f"{self.group}:{self.name} ({self.value}, from {self.dist})"


def plugins(group: str) -> tuple[Plugin, ...]:
    """The group's plugins in load order, duplicates removed (cached per process)."""
    return _plugins(group)


def names(group: str) -> list[str]:
    return [p.name for p in plugins(group)]


def get(group: str, name: str) -> Plugin:
    """One plugin by name; KeyError if no distribution declares it."""
    for p in plugins(group):
        if p.name == name:
            return p
    raise KeyError(name)


def each(group: str, use: Callable[[Plugin, Any], None], *, third_party: bool = True) -> None:
    """Load every plugin of the group and hand it to `use`; isolate third-party failures."""
    for plugin in plugins(group):
        if not plugin.builtin and not third_party:
            continue
        try:
            use(plugin, plugin.load())
        except Exception as exc:
            if plugin.builtin:
                raise PluginError(f"built-in plugin {plugin} failed: {type(exc).__name__}: {exc}") from exc
            log.exception("plugin %s failed to load or register; skipped", plugin)


def clear_cache() -> None:
    """Forget what was discovered and loaded (tests that install a plugin at run time)."""
    _plugins.cache_clear()
    _installed.cache_clear()
    _load.cache_clear()
    _declared.cache_clear()
    _warned.clear()


# -- discovery ------------------------------------------------------------------------------------------


@cache
def _plugins(group: str) -> tuple[Plugin, ...]:
    found: dict[str, Plugin] = {}
    third = sorted(
        (Plugin(group, ep.name, ep.value, _dist_name(ep)) for ep in _entry_points(group)),
        key=lambda p: (p.name, _norm(p.dist)),
    )
    for plugin in [*_builtins(group), *(p for p in third if not p.builtin)]:
        first = found.get(plugin.name)
        if first is None:
            found[plugin.name] = plugin
        elif first != plugin:
            log.error("plugin %s ignored: the name %r is already taken by %s", plugin, plugin.name, first)
    return tuple(found.values())


def _builtins(group: str) -> list[Plugin]:
    installed = sorted(
        (Plugin(group, ep.name, ep.value, DIST) for ep in _entry_points(group) if _is_ours(ep)),
        key=lambda p: p.name,
    )
    declared = _declared()
    if declared is not None:
        source = sorted(
            (Plugin(group, name, value, DIST) for name, value in declared.get(group, {}).items()),
            key=lambda p: p.name,
        )
        if source != installed:
            _warn_once(
                "the installed metadata of local-ai-lab is stale (its entry points differ from "
                f"pyproject.toml); using pyproject.toml's: {REINSTALL_HINT}"
            )
        return source
    if not installed and group in GROUPS:
        _warn_once(
            f"the installed metadata of local-ai-lab declares no {group} entry points, so built-in "
            f"providers, stores, components, checks or migrations are missing: {REINSTALL_HINT}",
            level=logging.ERROR,
        )
    return installed


def _entry_points(group: str) -> list[EntryPoint]:
    return list(_installed().select(group=group))


@cache
def _installed() -> Any:
    """Every installed entry point, from one scan of the distributions (each scan reads all their
    metadata); like any `entry_points()`, the first copy of a distribution on sys.path hides the others."""
    return entry_points()


@cache
def _declared() -> dict[str, dict[str, str]] | None:
    """Entry points of the source checkout this module runs from, or None for an installed package."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    if _norm(str(project.get("name", ""))) != DIST:
        return None
    groups: dict[str, dict[str, str]] = project.get("entry-points", {})
    return groups


_warned: set[str] = set()


def _warn_once(message: str, level: int = logging.WARNING) -> None:
    if message not in _warned:
        _warned.add(message)
        log.log(level, "%s", message)


@cache
def _load(value: str) -> Any:
    # EntryPoint.load without a distribution: the same resolution rules ("module" or "module:attr.attr").
    module_name, _, attrs = value.partition(":")
    obj: Any = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def _is_ours(ep: EntryPoint) -> bool:
    return _norm(_dist_name(ep)) == DIST


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
