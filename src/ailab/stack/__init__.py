"""The stack pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.stack.catalog import UnknownComponent, expand, members, select, with_dependencies
    from ailab.stack.catalog import catalog as component_catalog
    from ailab.stack.compose import render_compose
    from ailab.stack.helm import ScaleError, render_kubernetes
    from ailab.stack.model import Backup, PublicRoute, SecretSpec
    from ailab.stack.native.plan import state_file
    from ailab.stack.native.supervisor import pid_alive, read_state
    from ailab.stack.project import Rendered, context, render_to, selection
    from ailab.stack.public import PublicAccessError, check_route
    from ailab.stack.runtime import (
        StackRuntimeError,
        compose_command,
        compose_dir,
        down_native,
        run_compose,
        up_native,
    )
    from ailab.stack.secrets import open_stack_secrets, specs_for
    from ailab.stack.state import StackState, load_state, save_state, stack_dir

_WHERE = {
    "Backup": "ailab.stack.model",
    "PublicAccessError": "ailab.stack.public",
    "PublicRoute": "ailab.stack.model",
    "Rendered": "ailab.stack.project",
    "ScaleError": "ailab.stack.helm",
    "SecretSpec": "ailab.stack.model",
    "StackRuntimeError": "ailab.stack.runtime",
    "StackState": "ailab.stack.state",
    "UnknownComponent": "ailab.stack.catalog",
    "component_catalog": "ailab.stack.catalog:catalog",
    "check_route": "ailab.stack.public",
    "compose_command": "ailab.stack.runtime",
    "compose_dir": "ailab.stack.runtime",
    "context": "ailab.stack.project",
    "down_native": "ailab.stack.runtime",
    "expand": "ailab.stack.catalog",
    "load_state": "ailab.stack.state",
    "members": "ailab.stack.catalog",
    "open_stack_secrets": "ailab.stack.secrets",
    "pid_alive": "ailab.stack.native.supervisor",
    "read_state": "ailab.stack.native.supervisor",
    "render_compose": "ailab.stack.compose",
    "render_kubernetes": "ailab.stack.helm",
    "render_to": "ailab.stack.project",
    "run_compose": "ailab.stack.runtime",
    "save_state": "ailab.stack.state",
    "select": "ailab.stack.catalog",
    "selection": "ailab.stack.project",
    "specs_for": "ailab.stack.secrets",
    "stack_dir": "ailab.stack.state",
    "state_file": "ailab.stack.native.plan",
    "up_native": "ailab.stack.runtime",
    "with_dependencies": "ailab.stack.catalog",
}

__all__ = [
    "Backup",
    "PublicAccessError",
    "PublicRoute",
    "Rendered",
    "ScaleError",
    "SecretSpec",
    "StackRuntimeError",
    "StackState",
    "UnknownComponent",
    "check_route",
    "component_catalog",
    "compose_command",
    "compose_dir",
    "context",
    "down_native",
    "expand",
    "load_state",
    "members",
    "open_stack_secrets",
    "pid_alive",
    "read_state",
    "render_compose",
    "render_kubernetes",
    "render_to",
    "run_compose",
    "save_state",
    "select",
    "selection",
    "specs_for",
    "stack_dir",
    "state_file",
    "up_native",
    "with_dependencies",
]


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
