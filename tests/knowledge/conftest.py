"""A lab started in process (as the CLI runs it) for each vector store, with a loopback chat upstream; the
catalog in the data dir's SQLite file, and (for the embedded and Qdrant stores) in the lab's PostgreSQL
database, the way replicas share it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailab.config import load_config
from tests.conftest import MASTER, UPSTREAM_KEY, fresh_pg_database, model

STORES = ["embedded", "qdrant", "milvus"]
# (vector store, catalog): every store with the SQLite catalog, and the PostgreSQL catalog with two stores.
LABS = [*((s, "sqlite") for s in STORES), ("embedded", "postgres"), ("qdrant", "postgres")]


def lab_config(upstream_url: str, store: str, tmp: Path, database_url: str | None = None) -> dict[str, Any]:
    general: dict[str, Any] = {"master_key": MASTER}
    if database_url:
        general["database_url"] = database_url
    return {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{upstream_url}/v1", api_key=UPSTREAM_KEY),
            # The built-in embedder, priced by machine time so its calls carry a cost in the ledger.
            model(
                "embed",
                "local/all-MiniLM-L6-v2",
                "local://",
                model_info={"mode": "embedding", "cost_per_hour": 0.36},
            ),
        ],
        "general_settings": general,
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.02},
        "knowledge": {
            "store": store,
            "embedding_model": "embed",
            "chat_model": "gpt",
            "stores": {"qdrant": {"path": ":memory:"}, "milvus": {"url": str(tmp / "m.db")}},
        },
    }


@dataclass
class KLab:
    state: Any
    svc: Any
    data_dir: Path
    config_path: Path


@pytest.fixture
def write_config(tmp_path: Path, openai_upstream):
    def write(store: str = "embedded", database_url: str | None = None) -> tuple[Path, Path]:
        path = tmp_path / "ailab.yaml"
        path.write_text(yaml.safe_dump(lab_config(openai_upstream.url, store, tmp_path, database_url)))
        return path, tmp_path / "data"

    return write


@pytest.fixture(params=LABS, ids=[f"{s}-{c}" for s, c in LABS])
async def klab(request, write_config) -> AsyncIterator[KLab]:
    from ailab.server.local import open_lab

    store, catalog = request.param
    database = None
    if catalog == "postgres":
        database = fresh_pg_database(request.getfixturevalue("postgres_server"), "kn")
    path, data_dir = write_config(store, database)
    async with open_lab(load_config(path, data_dir)) as (state, svc):
        assert type(svc.catalog).__name__ == {"sqlite": "SqliteCatalog", "postgres": "PgCatalog"}[catalog]
        yield KLab(state, svc, data_dir, path)
    if catalog == "postgres":  # the catalog lived in the database alone
        assert not (data_dir / "knowledge" / "catalog.sqlite").exists()
