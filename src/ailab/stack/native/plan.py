"""From the installed components to supervised processes: argv, environment, config files, ports."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ailab.stack.catalog import catalog
from ailab.stack.model import Component, NativeContext, RenderContext
from ailab.stack.monitoring import component_rules, scrape_config, static_rules
from ailab.stack.native.supervisor import ProcSpec
from ailab.stack.state import StackState, stack_dir
from ailab.stack.wiring import resolve

if TYPE_CHECKING:
    from ailab.config import LoadedConfig


@dataclass
class NativePlan:
    specs: list[ProcSpec]
    skipped: list[str]  # "name: why" for installed components that cannot run here


def native_dir(data_dir: Path) -> Path:
    return stack_dir(data_dir) / "native"


def state_file(data_dir: Path) -> Path:
    return stack_dir(data_dir) / "native.json"


def find_executable(name: str) -> str | None:
    if name == "python":
        return sys.executable
    beside = Path(sys.executable).parent / name  # tools installed in the same virtual environment
    return str(beside) if beside.exists() else shutil.which(name)


def build_plan(loaded: LoadedConfig, state: StackState, secrets: dict[str, str]) -> NativePlan:
    cat = catalog()
    wanted = ["ailab", *[n for n in state.installed if n != "ailab"]]
    runnable: dict[str, str] = {}
    skipped: list[str] = []
    for name in wanted:
        recipe = cat[name].native
        exe = find_executable(recipe.executable) if recipe else None
        if recipe is None:
            skipped.append(f"{name}: no native recipe (use --runtime docker)")
        elif exe is None:
            skipped.append(f"{name}: {recipe.executable} not found ({recipe.install_hint})")
        else:
            runnable[name] = exe
    ports = {n: _port(loaded, state, cat[n]) for n in runnable}
    ctx = RenderContext(
        {n: cat[n] for n in runnable}, target="native", native_ports=ports, budget_usd=state.budget_usd
    )
    specs = [_spec(loaded, cat[name], exe, ctx, secrets) for name, exe in runnable.items()]
    return NativePlan(specs, skipped)


def _port(loaded: LoadedConfig, state: StackState, comp: Component) -> int:
    if comp.name == "ailab":
        return int(loaded.config.ailab.port)
    first = comp.ports[0]
    return state.native_ports.get(comp.name, first.host if first.host is not None else first.number)


def _spec(
    loaded: LoadedConfig, comp: Component, exe: str, ctx: RenderContext, secrets: dict[str, str]
) -> ProcSpec:
    assert comp.native is not None
    data_dir = loaded.data_dir.resolve()  # children run in their own working directory
    work = native_dir(data_dir) / comp.name
    work.mkdir(parents=True, exist_ok=True)
    port = ctx.native_ports[comp.name]
    host = loaded.config.ailab.host if comp.name == "ailab" else "127.0.0.1"
    nctx = NativeContext(str(work), port, ctx.native_ports, os.geteuid() == 0, host)
    argv = [exe, *comp.native.argv(nctx)]
    env = dict(os.environ)
    env.update({k: resolve(v, ctx, secrets.__getitem__) for k, v in comp.native.env.items()})
    if comp.name == "ailab":
        argv += ["--data-dir", str(data_dir)] + (
            ["--config", str(loaded.path.resolve())] if loaded.path else []
        )
    _write_native_config(comp, ctx, work)
    probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    probe = f"[{probe}]" if ":" in probe else probe
    health = f"http://{probe}:{port}{comp.native.health_path}" if comp.native.health_path else None
    log_path = stack_dir(data_dir) / "logs" / f"{comp.name}.log"
    return ProcSpec(comp.name, argv, env, log_path, health, port, work)


def _write_native_config(comp: Component, ctx: RenderContext, work: Path) -> None:
    if comp.name == "prometheus":
        # On loopback the lab's /metrics needs no key, so the native config carries no credentials.
        (work / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(ctx, secrets_dir=None)))
        rules = work / "rules"
        rules.mkdir(exist_ok=True)
        (rules / "components.yml").write_text(yaml.safe_dump(component_rules(ctx, ctx.budget_usd)))
        for name, text in static_rules().items():
            (rules / name).write_text(text)
    elif comp.name == "openbao":
        from ailab.stack.catalog.vault import bao_native_config

        (work / "openbao.hcl").write_text(bao_native_config(str(work), ctx.native_ports["openbao"]))
    elif comp.name == "jupyter":
        from ailab.stack.catalog.jupyter import copy_notebooks

        copy_notebooks(work)  # JupyterLab's root is the work dir
