"""Run ASGI apps as real HTTP servers on loopback, with a request log and fault injection.

Each fake upstream speaks one provider's documented wire format; tests assert routing behaviour
(retries, fallbacks, cooldowns) from `Upstream.log`, the upstream's own record of what reached it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass
class Fault:
    status: int | None = None  # answer with this HTTP status
    body: dict[str, Any] | None = None
    retry_after: str | None = None
    delay: float = 0.0  # sleep before answering (timeouts)
    cut_after: int | None = None  # streams: send this many events, then drop the connection
    end_after: int | None = None  # streams: send this many events, then end the body (no finish, no [DONE])
    event_delay: float = 0.0  # streams: pause before each event after the first


@dataclass
class Upstream:
    """State shared by a fake upstream and the test that drives it."""

    name: str
    api_key: str | None = None
    url: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    responses: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Streams the client side (the gateway) closed before the last event, and events sent in all.
    streams_closed_early: int = 0
    events_sent: int = 0

    def fail_next(self, n: int = 1, **fault: Any) -> None:
        with self.lock:
            self.faults.extend(Fault(**fault) for _ in range(n))

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    async def record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        entry = {
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": dict(request.headers),
            "body": _json_or_none(raw),
            "t": time.monotonic(),
        }
        with self.lock:
            self.log.append(entry)
        return entry

    def requests(self, path_part: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.log if path_part in e["path"]]

    def clear(self) -> None:
        with self.lock:
            self.log.clear()
            self.faults.clear()


def _json_or_none(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


async def apply_fault(fault: Fault | None, default_error: Callable[[int], dict[str, Any]]) -> Response | None:
    """Sleep and/or return the error response a fault asks for; None means answer normally."""
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is None:
        return None
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    return JSONResponse(fault.body or default_error(fault.status), status_code=fault.status, headers=headers)


class ResponseRecorder:
    """ASGI wrapper keeping every response body the upstream sent, so tests can read the usage an upstream
    reported in its own wire format, independently of the gateway's adapters."""

    def __init__(self, app: Any, up: Upstream) -> None:
        self.app = app
        self.up = up

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {"path": scope["path"], "status": None, "body": b""}

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            elif message["type"] == "http.response.body":
                record["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            with self.up.lock:
                self.up.responses.append(record)


class StreamCut(Exception):
    """Raised inside a streaming body to drop the connection mid-way."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        """`options`: more uvicorn settings (the lab's own protocol: `ailab.server.slowclients`)."""
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="auto", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
