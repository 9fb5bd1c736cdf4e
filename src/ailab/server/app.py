"""The app factory. One ASGI callable: the OpenAI routes are served by raw ASGI handlers (the hot path);
everything else goes to the admin app (FastAPI). Nothing is built at import time.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

from ailab.config import LoadedConfig, load_config
from ailab.gateway import GatewayError, Receive, Scope, Send, clip, send_error
from ailab.server import health
from ailab.server.state import LabState

log = logging.getLogger("ailab")


class LabApp:
    def __init__(self, loaded: LoadedConfig) -> None:
        from ailab.server.slowclients import configure

        configure(loaded.config.ailab)  # this process's slow-client timeouts (each worker builds its app)
        self.state = LabState(loaded)
        self.web: Any = None  # built once the state has started (its routers need the started pillars)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.web(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self.state.api
        handler = api.match(scope) if api is not None else None
        if handler is not None:
            try:
                await handler(scope, receive, send)
            except GatewayError as exc:
                await send_error(send, exc)
            return
        miss = self._api_miss(scope)
        if miss is not None:
            await send_error(send, miss)
            return
        await self.web(scope, receive, send)

    def _api_miss(self, scope: Scope) -> GatewayError | None:
        """An OpenAI-shaped 405/404 for API paths the hot path does not serve; None for everything else."""
        api = self.state.api
        allowed = api.allowed_methods(scope["path"]) if api is not None else []
        if allowed:
            methods = ", ".join(allowed)
            return GatewayError(
                405,
                f"{clip(scope['method'], 16)} is not allowed here; use {methods}",
                headers={"Allow": methods},
            )
        if scope["path"].startswith("/v1/") and not scope["path"].startswith("/v1/knowledge/"):
            return GatewayError(
                404,
                f"unknown endpoint {clip(scope['method'], 16)} {clip(scope['path'], 100)}",
                code="unknown_endpoint",
            )
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.state.start()
                    self.web = build_web(self.state)
                    _tune_runtime()
                except Exception as exc:  # report start-up failures to the server, which exits
                    log.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.state.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_web(state: LabState) -> Any:
    """Everything off the hot path: the admin API (FastAPI, with OpenAPI), health and metrics."""
    from ailab.server.admin.app import build_admin_app
    from ailab.server.bodylimit import BodyLimit, BodyLimits

    web = build_admin_app(state)
    web.router.routes.extend(health.routes(state))
    cfg = state.loaded.config
    limits = BodyLimits(
        json=int(cfg.general_settings.max_request_size_mb * 2**20),
        upload=int(cfg.knowledge.max_upload_mb * 2**20),
    )
    return BodyLimit(web, limits)


def create_app(loaded: LoadedConfig | None = None, **load_args: Any) -> LabApp:
    return LabApp(loaded or load_config(**load_args))


def app_from_env() -> LabApp:
    """uvicorn factory for `--workers N`: config and data dir come from AILAB_CONFIG / AILAB_DATA_DIR."""
    return create_app()


def _tune_runtime() -> None:
    """Three interpreter settings for a server that shares its process with the ledger writer thread.

    - Freeze everything built at start-up (price tables, routes, models: most of the heap) out of the
      collector's reach, so a full collection walks only what requests allocate instead of pausing the event
      loop for tens of milliseconds.
    - Collect the youngest generation after 10,000 allocations instead of 700 (the older ones after 20 and
      10 of the younger): at 700 it ran every ~12 requests, each time walking the in-flight requests' young
      objects again. Measured at concurrency 32, 2 workers, alternating rounds in one lab: −15 to −30 µs of
      CPU a request, RPS up 1–10 % (docs/benchmarks.md).
    - Hand the GIL over every 1 ms instead of 5: the event loop waits at most that long behind the writer
      thread's row building. Measured with one worker at concurrency 16: p99 from 54-71 ms to 6-7 ms, and
      RPS up 10 % (bench/gateway)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 10)
    sys.setswitchinterval(0.001)
