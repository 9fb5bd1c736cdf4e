"""Glue between the lab (config, data dir, secret store) and the renderers."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from ailab.stack.catalog import catalog, select
from ailab.stack.labconfig import Portable, portable
from ailab.stack.model import RenderContext, SecretRef, SecretSpec
from ailab.stack.render import Tree
from ailab.stack.secrets import open_stack_secrets, specs_for
from ailab.stack.state import StackState, detect_gpu, load_state

if TYPE_CHECKING:
    from ailab.config import LoadedConfig


@dataclass
class Rendered:
    tree: Tree
    written: list[Path]
    missing: list[SecretSpec]  # user-provided secrets not in the store yet


def context(
    names: list[str], state: StackState, target: Literal["cluster", "native"] = "cluster"
) -> RenderContext:
    comps = select(names)
    cat = catalog()
    ports = {n: state.native_ports.get(n, _default_port(n)) for n in comps if cat[n].ports}
    return RenderContext(
        comps,
        project=state.project,
        target=target,
        native_ports=ports,
        budget_usd=state.budget_usd,
        routes=tuple(r for r in state.routes if r.component in comps),
    )


def _default_port(name: str) -> int:
    port = catalog()[name].ports[0]
    return port.host if port.host is not None else port.number


def selection(state: StackState, names: list[str] | None) -> list[str]:
    """What to render: the given names, else what is installed, else the lab alone."""
    return list(names or state.installed or ["ailab"])


def render_to(
    loaded: LoadedConfig,
    kind: Literal["compose", "kubernetes"],
    names: list[str] | None,
    out: Path,
    replicas: int = 1,
) -> Rendered:
    from ailab.stack.compose import render_compose
    from ailab.stack.helm import check_replicas, render_kubernetes

    state = load_state(loaded.data_dir)
    ctx = context(selection(state, names), state)
    check_replicas(ctx, replicas)  # before anything is generated or written
    gpu = state.gpu or detect_gpu()
    with open_stack_secrets(loaded) as stack:
        values = stack.ensure(specs_for(ctx.components))
        missing = list(stack.missing)
        lab = portable(
            _raw_config(loaded),
            os.environ,
            stack.store.get,
            keep_secret_refs=loaded.config.secrets.backend == "vault",
        )
    ctx = with_lab_config(ctx, lab)
    values.update(lab.env)
    missing += [SecretSpec(k, "user", f"used by ailab.yaml at {at}") for k, at in lab.missing.items()]
    if kind == "compose":
        tree = render_compose(ctx, values, gpu)
    else:
        tree = render_kubernetes(ctx, values, gpu, replicas)
    return Rendered(tree, tree.write(out), missing)


def _raw_config(loaded: LoadedConfig) -> dict[str, Any]:
    """The file as the user wrote it (references unresolved); it loaded once already, so it parses."""
    if loaded.path is None:
        return {}
    data = yaml.safe_load(loaded.path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return {}
    from ailab.apps import inlined

    return inlined(data, loaded)  # the apps folder travels inside the config


def with_lab_config(ctx: RenderContext, lab: Portable) -> RenderContext:
    """The context whose lab component carries the user's config and reads its credentials by reference."""
    comps = dict(ctx.components)
    if "ailab" in comps:
        extra = {name: SecretRef(name) for name in sorted({*lab.env, *lab.missing})}
        comps["ailab"] = replace(comps["ailab"], env={**comps["ailab"].env, **extra})
    return replace(ctx, components=comps, lab_config=lab.config)
