"""Install state, kept in the data dir (`stack/state.json`): what is installed, host ports, routes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ailab.stack.model import PublicRoute


@dataclass
class StackState:
    installed: list[str] = field(default_factory=list)
    native_ports: dict[str, int] = field(default_factory=dict)  # overrides of the catalog's ports
    routes: list[PublicRoute] = field(default_factory=list)
    gpu: str | None = None  # cpu / nvidia / amd; None: detect
    budget_usd: float = 100.0
    project: str = "ailab"


def stack_dir(data_dir: Path) -> Path:
    return data_dir / "stack"


def load_state(data_dir: Path) -> StackState:
    path = stack_dir(data_dir) / "state.json"
    if not path.exists():
        return StackState()
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["routes"] = [PublicRoute(**r) for r in raw.get("routes", [])]
    return StackState(**raw)


def save_state(data_dir: Path, state: StackState) -> None:
    directory = stack_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, directory / "state.json")


def detect_gpu() -> str:
    """nvidia, amd or cpu, from the device files the container runtimes would pass through."""
    if Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists():
        return "nvidia"
    if Path("/dev/kfd").exists():
        return "amd"
    return "cpu"
