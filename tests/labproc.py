"""`ailab up` as a real process on a free loopback port, for tests that need signals or several processes."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import MASTER
from tests.upstreams.harness import free_port


def run_lab(
    cfg_path: Path, data_dir: Path, *args: str, new_session: bool = False
) -> tuple[subprocess.Popen, str]:
    """Start `ailab up` and wait until /health/ready answers; return the process and its URL.
    `new_session`: in a process group of its own, so that `os.killpg` reaches its workers too."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ailab",
        "up",
        "--config",
        str(cfg_path),
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "AILAB_MASTER_KEY": MASTER},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )
    _STARTED.append((proc, new_session))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url)
    except BaseException:  # a timeout or Ctrl-C while waiting: never leave the lab (and its workers) behind
        _kill(proc, new_session)
        raise
    return proc, url


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120  # generous: a loaded CI box can take tens of seconds to spawn workers
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "exited")
    raise RuntimeError("ailab up did not become ready")


_STARTED: list[tuple[subprocess.Popen, bool]] = []


def _kill(proc: subprocess.Popen, group: bool) -> None:
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return
        proc.terminate()  # the lab stops its own workers (a SIGKILL would orphan them)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


@atexit.register
def _kill_leftovers() -> None:
    """A test that failed (or timed out) between starting a lab and stopping it leaves it running: the
    session's end stops it, so later runs and CI do not share the box with orphaned labs."""
    for proc, group in _STARTED:
        _kill(proc, group)
