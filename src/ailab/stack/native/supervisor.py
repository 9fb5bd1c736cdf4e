"""A small process supervisor: start, health-check, restart with backoff, log, stop.

Each child runs in its own session (process group) so stopping it also stops what it spawned (Jupyter
kernels). The supervisor publishes its view in a JSON state file that `ailab status` and `ailab down`
read from other processes; it is rewritten atomically on every change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ailab.stack.native")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
LOG_TAIL_LINES = 20  # of a failed child's log, shown with its exit code
START_MARK = "--- ailab: starting "


@dataclass(frozen=True)
class ProcSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    port: int | None = None
    cwd: Path | None = None


@dataclass
class Child:
    spec: ProcSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    healthy: bool = False
    next_start: float = 0.0
    backoff: float = BACKOFF_START_S
    last_exit: int | None = None
    started: float = field(default=0.0)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback URLs we built)
            return bool(200 <= resp.status < 400)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Supervisor:
    def __init__(self, specs: list[ProcSpec], state_path: Path, poll_s: float = 0.5) -> None:
        self.children = {s.name: Child(s) for s in specs}
        self.state_path = state_path
        self.poll_s = poll_s
        self.stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Supervise until `stop()` (or SIGTERM/SIGINT when installed as handlers), then stop all."""
        try:
            while not self.stopping.is_set():
                self.step()
                self.stopping.wait(self.poll_s)
        finally:
            self.stop_all()

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def step(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is None:
                if now >= child.next_start:
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is not None:
                self._exited(child, code, now)
            else:
                self._check(child)
        self.write_state()

    def _start(self, child: Child) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as out:
            out.write(f"{START_MARK}{spec.name} ---\n".encode())
            out.flush()
            child.proc = subprocess.Popen(
                spec.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=spec.env,
                cwd=spec.cwd,
                start_new_session=True,
            )
        child.started = time.monotonic()
        child.healthy = False
        log.info("started %s (pid %d)", spec.name, child.proc.pid)

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.last_exit = code
        child.proc = None
        child.healthy = False
        child.restarts += 1
        child.next_start = now + child.backoff
        tail = log_tail(child.spec.log_path)
        log.warning(
            "%s exited with %d; restarting in %.0f s. Last lines of %s:\n%s",
            child.spec.name,
            code,
            child.backoff,
            child.spec.log_path,
            "\n".join(f"  | {line}" for line in tail) or "  (the log is empty)",
        )
        child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)

    def _check(self, child: Child) -> None:
        url = child.spec.health_url
        healthy = True if url is None else http_ok(url)
        if healthy and not child.healthy:
            log.info("%s is healthy", child.spec.name)
            child.backoff = BACKOFF_START_S  # a good start forgives earlier crashes
        child.healthy = healthy

    def stop_all(self, timeout_s: float = 15.0) -> None:
        running = [c for c in self.children.values() if c.proc is not None]
        for child in running:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.proc.wait()
            child.proc = None
            child.healthy = False
        self.write_state(stopped=True)

    # -- state ----------------------------------------------------------------------------------------

    def write_state(self, stopped: bool = False) -> None:
        state = {
            "supervisor_pid": None if stopped else os.getpid(),
            "components": {
                name: {
                    "pid": c.proc.pid if c.proc else None,
                    "healthy": c.healthy,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "port": c.spec.port,
                    "log": str(c.spec.log_path),
                }
                for name, c in self.children.items()
            },
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_path)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    assert child.proc is not None
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing to stop
        os.killpg(child.proc.pid, sig)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `lines` lines the child wrote since it was last started (reads at most `max_bytes`)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    run = text.rsplit(START_MARK, 1)
    body = run[1].split("\n", 1)[1] if len(run) == 2 and "\n" in run[1] else run[-1]
    return body.rstrip("\n").splitlines()[-lines:]


def read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
