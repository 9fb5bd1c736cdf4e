"""Helpers for the doctor tests: run one check against a config + data dir, a lab that serves it (in process,
with the run file `ailab up` would write), and loopback fakes of the stack's apps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ailab.config import load_config
from ailab.config.loader import LoadedConfig
from ailab.gateway.types import Usage
from ailab.ledger import UsageEvent, schema
from ailab.ledger.writer import spill_record
from ailab.ops.doctor import DoctorContext, Result
from ailab.ops.doctor.base import run_one, select_checks
from ailab.ops.runfile import write_runfile
from ailab.stack.state import StackState, save_state
from tests.conftest import MASTER, Gateway
from tests.upstreams.harness import ServerThread


def run_check(loaded: LoadedConfig, name: str, **ctx_kw: Any) -> Result:
    (c,) = select_checks([name])
    with DoctorContext(loaded, **ctx_kw) as ctx:
        return run_one(c, ctx)


@pytest.fixture
def lab_config(tmp_path: Path) -> Callable[..., LoadedConfig]:
    """Write an ailab.yaml (the master key set) and load it with a data dir under tmp_path."""

    def make(config: dict[str, Any] | None = None, data_dir: Path | None = None) -> LoadedConfig:
        cfg = dict(config or {})
        cfg.setdefault("general_settings", {}).setdefault("master_key", MASTER)
        cfg.setdefault("ailab", {}).setdefault("discover_ollama", False)
        path = tmp_path / "ailab.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return load_config(path, data_dir or tmp_path / "data")

    return make


def serving(gw: Gateway) -> LoadedConfig:
    """The gateway's config and data dir, with the run file `ailab up` writes: the doctor sees a lab."""
    write_runfile(gw.data_dir, "127.0.0.1", gw.server.port)
    return load_config(gw.config_path, gw.data_dir)


def install(data_dir: Path, *names: str, **ports: int) -> None:
    """Record components as installed, at the given host ports (`dify=1234`)."""
    state = StackState(
        installed=sorted(names), native_ports={k.replace("_", "-"): v for k, v in ports.items()}
    )
    save_state(data_dir, state)


# -- fakes of stack components -------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def qdrant_app(api_key: str | None = None) -> Starlette:
    def auth(request: Request) -> Response | None:
        if api_key and request.headers.get("api-key") != api_key:
            return _json({"status": {"error": "Must provide an API key"}}, 401)
        return None

    async def readyz(_: Request) -> Response:
        return Response("all shards are ready", media_type="text/plain")

    async def collections(request: Request) -> Response:
        return auth(request) or _json({"result": {"collections": [{"name": "docs"}]}, "status": "ok"})

    return Starlette(
        routes=[
            Route("/readyz", readyz, methods=["GET"]),
            Route("/collections", collections, methods=["GET"]),
        ]
    )


def jupyter_app(kernels: dict[str, Any], token: str | None = None) -> Starlette:
    async def api(_: Request) -> Response:
        return _json({"version": "2.15.0"})

    async def kernelspecs(request: Request) -> Response:
        if token and request.headers.get("authorization") != f"token {token}":
            return _json({"message": "Forbidden"}, 403)
        return _json({"default": next(iter(kernels), "python3"), "kernelspecs": kernels})

    return Starlette(
        routes=[Route("/api", api, methods=["GET"]), Route("/api/kernelspecs", kernelspecs, methods=["GET"])]
    )


def code_server_app() -> Starlette:
    async def healthz(_: Request) -> Response:
        return _json({"status": "alive", "lastHeartbeat": 0})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])


def dify_app() -> Starlette:
    async def ping(_: Request) -> Response:
        return _json({"result": "pong"})

    return Starlette(routes=[Route("/console/api/ping", ping, methods=["GET"])])


@pytest.fixture
def fake_server() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(app: Any, port: int | None = None) -> ServerThread:
        server = ServerThread(app, port).start()
        started.append(server)
        return server

    yield start
    for s in started:
        if s.thread.is_alive():
            s.stop()


def spill_line(group: str = "gpt") -> str:
    """One spill record exactly as LedgerWriter writes it when the database refuses rows."""
    event = UsageEvent(
        request_id="r1",
        ts=time.time(),
        endpoint=schema.ENDPOINT_CHAT,
        group=group,
        deployment=None,
        key_id=None,
        user_id=None,
        project_id=None,
        usage=Usage(prompt_tokens=10, completion_tokens=5),
        latency_s=0.012,
        ttft_s=None,
        status=200,
        error_type=None,
        stream=False,
    )
    return orjson.dumps(spill_record(event, 1000)).decode()
