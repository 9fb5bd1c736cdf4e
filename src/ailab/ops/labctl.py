"""Start, stop and health-gate `ailab up` processes (for upgrade; the lab itself never imports this)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ailab.ops.runfile import RunInfo, lab_locked, runfile_path
from ailab.stack import pid_alive


@dataclass(frozen=True)
class GateResult:
    ok: bool
    detail: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def candidate_argv(config: Path | None, data_dir: Path, port: int) -> list[str]:
    argv = [sys.executable, "-m", "ailab", "up", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    if config is not None:
        argv += ["--config", str(config)]
    return [*argv, "--port", str(port), "--workers", "1", "--log-level", "warning"]


def start_lab(argv: list[str], data_dir: Path) -> subprocess.Popen[bytes]:
    """Start `ailab up` in its own session, logging to <data>/run/lab.log (it outlives this command)."""
    log_path = data_dir / "run" / "lab.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def stop_lab(info: RunInfo, data_dir: Path, timeout: float = 40.0) -> bool:
    """SIGTERM, then wait until the lab has drained (its run file is gone and the data dir's lock free, or
    the process is dead)."""
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = not runfile_path(data_dir).exists() and not lab_locked(data_dir)
        if gone or not pid_alive(info.pid):
            return True
        time.sleep(0.1)
    os.kill(info.pid, signal.SIGKILL)
    return False


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 40.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def health_gate(
    url: str, master_key: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0
) -> GateResult:
    """Ready within `timeout` (database reachable), and the API answers an authenticated /v1/models."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return GateResult(False, f"the lab exited with status {proc.returncode} before it was ready")
            try:
                ready = client.get(f"{url}/health/ready")
                if ready.status_code == 200:
                    models = client.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {master_key}"})
                    if models.status_code == 200:
                        return GateResult(
                            True, f"ready; /v1/models lists {len(models.json()['data'])} models"
                        )
                    return GateResult(False, f"/v1/models answered {models.status_code}")
                last = f"/health/ready answered {ready.status_code}: {ready.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            time.sleep(0.2)
    return GateResult(False, f"not ready within {timeout:.0f} s ({last})")
