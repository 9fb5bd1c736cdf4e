"""Runtimes: `docker` (shells out to `docker compose` on the rendered project) and `native` (supervisor)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ailab.stack.compose import COMPOSE_FILE
from ailab.stack.state import stack_dir

if TYPE_CHECKING:
    from ailab.config import LoadedConfig


class StackRuntimeError(RuntimeError):
    """A runtime could not do what was asked; the message says what to do."""


def compose_dir(data_dir: Path) -> Path:
    return stack_dir(data_dir) / "compose"


def compose_command(project_dir: Path, *args: str) -> list[str]:
    return [
        "docker",
        "compose",
        "--project-directory",
        str(project_dir),
        "--file",
        str(project_dir / COMPOSE_FILE),
        "--env-file",
        str(project_dir / ".env"),
        *args,
    ]


def run_compose(project_dir: Path, *args: str) -> int:
    cmd = compose_command(project_dir, *args)
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        raise StackRuntimeError(
            "the docker client is not installed; install Docker (or use --runtime native)"
        ) from None


def up_native(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """Run the supervisor in the foreground until SIGTERM/SIGINT; returns (started, skipped)."""
    from ailab.stack.catalog import select
    from ailab.stack.native.plan import build_plan, state_file
    from ailab.stack.native.supervisor import Supervisor, pid_alive, read_state
    from ailab.stack.secrets import open_stack_secrets, specs_for
    from ailab.stack.state import load_state

    path = state_file(loaded.data_dir)
    if pid_alive(read_state(path).get("supervisor_pid")):
        raise StackRuntimeError(
            f"the native stack is already running (state: {path}); stop it with `ailab down`"
        )
    state = load_state(loaded.data_dir)
    comps = select(["ailab", *state.installed])
    with open_stack_secrets(loaded) as stack:
        secrets = stack.ensure(specs_for(comps))
    plan = build_plan(loaded, state, secrets)
    supervisor = Supervisor(plan.specs, path)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    for line in plan.skipped:
        print(f"skipped {line}", flush=True)
    supervisor.run()
    return [s.name for s in plan.specs], plan.skipped


def down_native(data_dir: Path, timeout_s: float = 30.0) -> bool:
    """Ask a running supervisor to stop everything; wait for it. False when none was running."""
    from ailab.stack.native.plan import state_file
    from ailab.stack.native.supervisor import pid_alive, read_state

    pid = read_state(state_file(data_dir)).get("supervisor_pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s

    def running() -> bool:
        # The supervisor clears its pid once every child is stopped (it may linger as a zombie after).
        return pid_alive(pid) and read_state(state_file(data_dir)).get("supervisor_pid") == pid

    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if running():
        raise StackRuntimeError(f"the supervisor (pid {pid}) did not stop within {timeout_s:.0f} s")
    return True
