"""`ailab up` as a real process on a free loopback port, for tests that need signals or several processes."""

from __future__ import annotations

import os
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
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a deadline, not a measure: a loaded CI box can be slow to start
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "exited")
    proc.kill()
    raise RuntimeError("ailab up did not become ready")
