"""Lazy doors: a pillar's `__init__` names what it exports and where it lives, and loads each name on first
use (PEP 562), so importing one name of a large pillar never imports the whole of it. A leaf module."""

from __future__ import annotations

import importlib
from typing import Any


def load(namespace: dict[str, Any], where: dict[str, str], name: str) -> Any:
    """The value of `name` from its module ("module" or "module:attribute"), kept in `namespace`."""
    target = where.get(name)
    if target is None:
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")  # "module:attr" when the door names it differently
    value = getattr(importlib.import_module(module), attr or name)
    namespace[name] = value
    return value
