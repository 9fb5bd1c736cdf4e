"""Slow clients cannot hold connections: uvicorn's httptools protocol with two timers more.

- header timeout: from the moment a connection opens, and from the first byte of each further request on
  it, the client has `header_timeout` seconds to complete the request line and headers (slowloris);
- body timeout: while a request body is arriving, the client may stay silent at most `body_timeout`
  seconds between pieces of it.
Over either, the connection is closed (an app waiting on the body sees `http.disconnect`). Between
requests, uvicorn's own `timeout_keep_alive` applies. The cost per request is a timer armed and cancelled
(one more when a body is sent), no work per byte.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from ailab.config import ServerSettings


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # Set per process by `configure()` from the lab's config (each worker builds its app, which calls it).
    header_timeout: float = 5.0
    body_timeout: float = 30.0

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_seen: float = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the first byte of a further request on a kept-alive connection
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if self.parser is not None and self._expects_body():
            self._body_seen = self.loop.time()
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_check)

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (
                name == b"content-length" and value.strip() not in (b"0", b"")
            ):
                return True
        return False

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._close_slow)

    def _body_check(self) -> None:
        """Close the connection if no piece of the body came for `body_timeout`; else look again later."""
        idle = self.loop.time() - self._body_seen
        if idle >= self.body_timeout:
            self._body_timer = None
            self._close_slow()
        else:
            self._body_timer = self.loop.call_later(self.body_timeout - idle, self._body_check)

    def _close_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def configure(settings: ServerSettings) -> None:
    GuardedHttpToolsProtocol.header_timeout = settings.header_timeout
    GuardedHttpToolsProtocol.body_timeout = settings.body_timeout


def uvicorn_options(settings: ServerSettings) -> dict[str, object]:
    """What `ailab up` passes to uvicorn: the guarded protocol and the keep-alive timeout."""
    configure(settings)
    return {"http": GuardedHttpToolsProtocol, "timeout_keep_alive": settings.keep_alive_timeout}
