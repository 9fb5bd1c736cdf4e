"""Helpers for the backup/restore tests: a lab's config, its API, table dumps to compare two labs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from ailab.config import load_config
from ailab.config.loader import LoadedConfig
from ailab.db import normalize_url
from tests.conftest import MASTER
from tests.knowledge.conftest import lab_config

H = {"Authorization": f"Bearer {MASTER}"}
# Tables that must come back identical (the ledger is compared as a prefix: it grows while serving).
STABLE_TABLES = (
    "ailab_migrations",
    "users",
    "projects",
    "memberships",
    "api_keys",
    "secrets",
    "audit_log",
    "audit_head",
)
DOCS = {
    "vacuum.md": b"# Vacuum\n\nVACUUM reclaims storage occupied by dead tuples after updates and deletes.\n",
    "wal.md": b"# WAL\n\nWrite-ahead logging protects committed data after a crash of the server.\n",
    "index.md": b"# Indexes\n\nA B-tree index speeds up equality and range lookups on a column.\n",
}
QUERIES = ["crash safety of data", "dead tuples storage", "range lookups", "what is an index"]


def write_lab(
    tmp: Path, name: str, upstream_url: str, *, key_file: Path, store: str = "embedded", **extra: Any
) -> LoadedConfig:
    """A config file `<tmp>/<name>.yaml` (built-in embedder, chat upstream) and data dir `<tmp>/<name>`."""
    cfg = lab_config(upstream_url, store, tmp)
    cfg["secrets"] = {"key_file": str(key_file)}
    cfg["knowledge"]["stores"] = {}
    for k, v in extra.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path, tmp / name)


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=H, timeout=60)


def populate(c: httpx.Client) -> dict[str, Any]:
    """Users, a project, a key, secrets and a collection with uploaded files, through the admin API."""
    ana = c.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"})
    assert ana.status_code == 201, ana.text
    proj = c.post("/api/projects", json={"name": "alpha"})
    assert proj.status_code == 201, proj.text
    key = c.post("/api/keys", json={"user_id": ana.json()["id"], "name": "k1"})
    assert key.status_code == 201, key.text
    for name, value in (("OPENAI", "sk-secret-one"), ("ANTHROPIC", "sk-ant-two")):
        assert c.put(f"/api/secrets/{name}", json={"value": value}).status_code == 200
    assert c.post("/v1/knowledge/collections", json={"name": "stable"}).status_code == 201
    files = [("files", (n, data, "text/markdown")) for n, data in DOCS.items()]
    r = c.post("/v1/knowledge/collections/stable/documents", files=files)
    assert r.status_code == 200 and r.json()["added"] == len(DOCS), r.text
    return {"key": key.json()["key"], "user": ana.json()["id"]}


def search_all(c: httpx.Client, collection: str = "stable") -> list[Any]:
    out = []
    for q in QUERIES:
        r = c.post(f"/v1/knowledge/collections/{collection}/search", json={"query": q, "k": 3})
        assert r.status_code == 200, r.text
        out.append([(h["chunk_id"], h["source"], h["text"], h["score"]) for h in r.json()["data"]])
    return out


def tables(url: str, names: tuple[str, ...] = (*STABLE_TABLES, "ledger_requests", "ledger_daily")) -> dict:
    engine = sa.create_engine(normalize_url(url))
    try:
        meta = sa.MetaData()
        meta.reflect(engine, only=list(names))
        out = {}
        with engine.connect() as conn:
            for name in names:
                t = meta.tables[name]
                order = list(t.primary_key.columns) or list(t.columns)
                out[name] = [tuple(r) for r in conn.execute(sa.select(t).order_by(*order))]
        return out
    finally:
        engine.dispose()


def assert_same_lab(src: dict, dst: dict) -> None:
    """Stable tables identical; the restored ledger a consistent prefix of the source's."""
    for name in STABLE_TABLES:
        assert dst[name] == src[name], name
    restored = dst["ledger_requests"]
    assert restored, "the backup holds no ledger row"
    assert restored == src["ledger_requests"][: len(restored)]
    # The writer updates the daily totals in the same transaction as the rows: the snapshot agrees.
    from ailab.ledger.schema import DAILY_DIMS

    requests = 1 + len(DAILY_DIMS)  # ledger_daily: day, the dimensions, then the sums (requests first)
    assert sum(r[requests] for r in dst["ledger_daily"]) == len(restored)


def small_lab(tmp: Path, name: str = "small", **extra: Any) -> LoadedConfig:
    """A lab built without a server (fast): migrated database with an admin and a secret, a master key
    file, a knowledge catalog with one embedded collection of three vectors, and a config file."""
    import numpy as np

    from ailab.access.service import AccessService
    from ailab.db import open_database
    from ailab.knowledge.catalog import Catalog, Collection
    from ailab.knowledge.stores.embedded import EmbeddedStore
    from ailab.secrets.local import LocalStore

    cfg: dict[str, Any] = {
        "ailab": {"discover_ollama": False},
        "secrets": {"key_file": str(tmp / f"{name}.key")},
    }
    cfg.update(extra)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(path, tmp / name)
    engine = open_database(loaded)
    try:
        AccessService.build(engine, loaded.config.access).bootstrap_admin()
        LocalStore(engine, key_file=str(tmp / f"{name}.key")).set("TOKEN", "s3cret")
    finally:
        engine.dispose()
    (loaded.data_dir / "master_key").write_text("sk-master-file\n")
    root = loaded.data_dir / "knowledge"
    coll = Collection("abc123", "notes", None, "embedded", "embed", 4, 200, 32, 0, "test")
    Catalog(root / "catalog.sqlite").add_collection(coll)
    store = EmbeddedStore(root / "embedded")
    store.create(coll.namespace, 4)
    store.upsert(coll.namespace, [1, 2, 3], np.eye(3, 4, dtype=np.float32))
    return loaded


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path with its bytes (to show a target was left untouched)."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
