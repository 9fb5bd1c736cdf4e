"""Shared pieces: free ports, waiting for readiness, wrk runs and their parsing, RSS sampling."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ailab_process(
    config: Path, data_dir: Path, master_key: str, workers: int = 2
) -> tuple[subprocess.Popen[bytes], str, float]:
    """`ailab up` on a free port, quiet; returns the process, its URL and the seconds until it was ready."""
    port = free_port()
    t0 = time.monotonic()
    argv = [sys.executable, "-m", "ailab", "up", "--config", str(config), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        env={**os.environ, "AILAB_MASTER_KEY": master_key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/ready")
    return proc, url, time.monotonic() - t0


def wait_ready(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> float:
    """Seconds until `url` answers 200."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    url: str, body: dict, headers: dict[str, str], connections: int, seconds: int, threads: int = 2
) -> WrkResult:
    script = f"wrk.method = 'POST'\nwrk.body = [[{json.dumps(body)}]]\n"
    for k, v in {"Content-Type": "application/json", **headers}.items():
        script += f"wrk.headers['{k}'] = '{v}'\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            f.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(f.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps,
        p50,
        p99,
        sum(int(x) for x in errs.groups()) if errs else 0,
        int(non2xx.group(1)) if non2xx else 0,
    )


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MiB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


@dataclass
class RssSampler:
    pid: int
    interval: float = 0.5
    peak: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            rss = tree_rss_mb(self.pid)
            self.peak = max(self.peak, rss)
            self.samples.append((time.monotonic() - t0, rss))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SystemExit(
            f"missing tools: {', '.join(missing)} — run `make bench-deps` (Debian: nginx-light wrk)"
        )
