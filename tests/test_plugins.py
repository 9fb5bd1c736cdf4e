"""The plugin catalog (`ailab.plugins`): a third-party provider and store installed as distributions (a
`*.dist-info` with METADATA and entry_points.txt next to their module on sys.path) are used by the lab like
the built-ins; broken or clashing plugins are named in the log and skipped; every built-in extension is
reachable through the catalog; stale installed metadata says how to fix it."""

from __future__ import annotations

import asyncio
import functools
import logging
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoints
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI
from sqlalchemy import select

from ailab import plugins
from ailab.access.principal import MASTER
from ailab.config import load_config
from ailab.gateway.providers import default_registry
from ailab.knowledge.stores import StoreError, open_store, store_names
from ailab.ledger import schema
from tests.conftest import MASTER as MASTER_KEY
from tests.conftest import UPSTREAM_KEY, model

SRC = Path(__file__).resolve().parents[1] / "src" / "ailab"

PLUGIN = '''
"""A third-party plugin distribution: a provider (echo/…) and a vector store (memory)."""
import numpy as np

from ailab.gateway.providers import Alias, Provider
from ailab.knowledge.stores.base import top_k


class EchoProvider(Provider):
    name = "echo"
    default_api_base = "echo://in-process"

    async def chat(self, body):
        said = " ".join(m["content"] for m in body["messages"] if isinstance(m.get("content"), str))
        return {
            "id": "chatcmpl-echo", "object": "chat.completion", "created": 1700000000,
            "model": self.deployment.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo: {said}"}}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
        }


def register(registry):
    registry.add(EchoProvider, ("echo", Alias("echo", "echo://in-process")))


def steal_openai(registry):
    registry.add(EchoProvider, ("openai", Alias("echo")))


def broken(registry):
    raise RuntimeError("broken on purpose")


class MemoryStore:
    kind = "memory"
    opened = []

    def __init__(self, root, opts):
        self.root, self.opts, self.data = root, opts, {}
        MemoryStore.opened.append(self)

    def create(self, collection, dimension):
        self.data.setdefault(collection, {})

    def drop(self, collection):
        self.data.pop(collection, None)

    def upsert(self, collection, ids, vectors):
        for i, v in zip(ids, vectors):
            self.data[collection][int(i)] = np.asarray(v, dtype=np.float32)

    def delete(self, collection, ids):
        for i in ids:
            self.data[collection].pop(int(i), None)

    def search(self, collection, vector, k, allowed=None):
        items = [(i, v) for i, v in self.data[collection].items() if allowed is None or i in allowed]
        if not items:
            return []
        ids = np.array([i for i, _ in items])
        return top_k(ids, np.stack([v for _, v in items]) @ np.asarray(vector, dtype=np.float32), k)

    def export(self, collection, batch=1024):
        items = sorted(self.data.get(collection, {}).items())
        for n in range(0, len(items), batch):
            part = items[n : n + batch]
            yield [i for i, _ in part], np.stack([v for _, v in part])

    def count(self, collection):
        return len(self.data.get(collection, {}))

    def close(self):
        pass


def open_memory(root, opts):
    return MemoryStore(root, opts)
'''

ENTRY_POINTS = """\
[ailab.providers]
echo = ailab_probe_plugins:register
steal = ailab_probe_plugins:steal_openai
broken = ailab_probe_plugins:broken
missing = ailab_probe_missing_module:register

[ailab.stores]
memory = ailab_probe_plugins:open_memory
embedded = ailab_probe_plugins:open_memory
"""


def install(root: Path, name: str, module: str, source: str, entry_points: str) -> None:
    """A distribution as pip leaves it: the module and its dist-info, on sys.path."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    install(root, "ailab-probe-plugins", "ailab_probe_plugins", PLUGIN, ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    plugins.clear_cache()
    yield root
    plugins.clear_cache()
    sys.modules.pop("ailab_probe_plugins", None)


# -- third-party plugins -------------------------------------------------------------------------------


def test_third_party_provider_serves_a_chat_completion_through_the_gateway(third_party, make_gateway):
    gw = make_gateway({"model_list": [model("parrot", "echo/parrot-1", "echo://in-process")]})
    client = OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
    reply = client.chat.completions.create(model="parrot", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.usage is not None and reply.usage.total_tokens == 7
    gw.flush()
    with gw.app.state.engine.connect() as conn:
        r = schema.requests.c
        tokens = conn.execute(select(r.prompt_tokens, r.completion_tokens)).all()
    assert [tuple(t) for t in tokens] == [(4, 3)], "the plugin's request is in the ledger like any other"


def test_third_party_store_is_chosen_by_the_knowledge_store_setting(third_party, tmp_path, openai_upstream):
    from ailab.server.local import open_lab

    cfg = {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
            model("embed", "local/all-MiniLM-L6-v2", "local://", model_info={"mode": "embedding"}),
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.02},
        "knowledge": {
            "store": "memory",
            "embedding_model": "embed",
            "chat_model": "gpt",
            "stores": {"memory": {"flavour": "plain"}},
        },
    }
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))

    async def run() -> None:
        async with open_lab(load_config(path, tmp_path / "data")) as (_state, svc):
            coll = await svc.create_collection(MASTER, "notes")
            doc = b"The lighthouse keeper trims the lamp at dusk.\n\nBoats wait in the harbour."
            await svc.ingest_bytes(MASTER, coll, [("notes.md", doc)])
            hits = await svc.search(MASTER, [coll], "who trims the lamp", 2)
            assert coll.store == "memory" and "lighthouse" in hits[0].text
            store = svc.store("memory")
            assert type(store).__name__ == "MemoryStore" and store.opts == {"flavour": "plain"}
            assert store.count(coll.namespace) >= 1

    asyncio.run(run())


def test_the_knowledge_api_creates_collections_in_a_plugin_store(third_party, make_gateway, tmp_path):
    from tests.knowledge.conftest import lab_config

    cfg = lab_config("http://127.0.0.1:9", "embedded", tmp_path)
    cfg.pop("general_settings")
    cfg.pop("ailab")
    gw = make_gateway(cfg)
    c = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)
    r = c.post("/v1/knowledge/collections", json={"name": "mem", "store": "memory"})
    assert r.status_code == 201 and r.json()["store"] == "memory", r.text
    r = c.post("/v1/knowledge/collections", json={"name": "nope", "store": "nope"})
    assert r.status_code == 400 and "unknown store 'nope': choose one of embedded, memory" in r.text


def test_broken_and_clashing_plugins_are_named_and_skipped(third_party, caplog):
    with caplog.at_level(logging.ERROR, logger="ailab.plugins"):
        reg = default_registry()
    assert "echo" in reg.adapters and reg.alias("openai").adapter == "openai"  # built-ins win
    text = caplog.text
    for name in ("broken", "missing", "steal"):
        assert f"ailab.providers:{name} " in text and "from ailab-probe-plugins" in text
    assert "broken on purpose" in text and "ailab_probe_missing_module" in text
    # A store named like a built-in is ignored, naming both distributions.
    assert plugins.get(plugins.STORES, "embedded").builtin
    assert "ailab.stores:embedded" in caplog.text and "already taken" in caplog.text
    assert "memory" in store_names()
    # Built-ins only: third-party providers are not loaded.
    assert "echo" not in default_registry(load_plugins=False).adapters


def test_unknown_store_names_the_choices(tmp_path):
    with pytest.raises(StoreError, match=r"unknown store 'nope': choose one of embedded, milvus, qdrant"):
        open_store("nope", tmp_path)


# -- built-ins ------------------------------------------------------------------------------------------


def _modules(folder: str) -> set[str]:
    return {p.stem for p in (SRC / folder).glob("*.py") if not p.stem.startswith("_")}


def test_every_builtin_is_reachable_through_the_catalog():
    plugins.clear_cache()
    for group in plugins.GROUPS:
        found = plugins.plugins(group)
        assert found and all(p.builtin for p in found), group
        for p in found:
            assert p.load() is not None, p
    reg = default_registry(load_plugins=False)
    assert set(reg.adapters) == {"openai", "azure", "anthropic", "gemini", "ollama", "local"}
    assert reg.split("groq/llama3") == ("groq", "llama3") and reg.alias("groq").adapter == "openai"
    assert reg.split("claude-3-5-haiku") == ("anthropic", "claude-3-5-haiku")
    assert store_names() == ["embedded", "milvus", "qdrant"]
    # Every component and doctor module in the source tree is registered (none is forgotten).
    from ailab.ops.doctor import all_checks
    from ailab.stack.catalog import catalog

    comps = {p.value.rsplit(".", 1)[1] for p in plugins.plugins(plugins.COMPONENTS)}
    assert comps == _modules("stack/catalog") and len(catalog()) >= len(comps)
    checks = {p.value.rsplit(".", 1)[1] for p in plugins.plugins(plugins.DOCTOR_CHECKS)}
    assert checks == _modules("ops/doctor") - {"base", "context", "cron"}
    assert [c.name for c in all_checks()][:2] == ["config", "ci"]


def test_migrations_keep_their_order_and_names():
    from ailab.access.schema import MIGRATIONS as ACCESS
    from ailab.db.migrations import registered_migrations
    from ailab.gateway.responses.store import MIGRATIONS as GATEWAY
    from ailab.knowledge.catalog_pg import MIGRATIONS as KNOWLEDGE
    from ailab.ledger import MIGRATIONS as LEDGER
    from ailab.secrets import MIGRATIONS as SECRETS

    names = [m.name for m in registered_migrations()]
    assert names == [m.name for m in (*LEDGER, *ACCESS, *SECRETS, *KNOWLEDGE, *GATEWAY)]
    assert len(set(names)) == len(names)


def test_the_gateway_registry_does_not_import_the_knowledge_pillar():
    code = (
        "import sys; from ailab.gateway.providers.registry import ProviderRegistry;"
        "assert not [m for m in sys.modules if m.startswith('ailab.knowledge')], 'knowledge imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- stale metadata -------------------------------------------------------------------------------------


@pytest.fixture
def fresh_catalog() -> Iterator[None]:
    """Rediscover before and after (after monkeypatch undoes its patches: request this fixture first)."""
    plugins.clear_cache()
    yield
    plugins.clear_cache()


def _no_entry_points() -> EntryPoints:
    return EntryPoints()


def test_stale_metadata_in_a_checkout_uses_pyproject_and_says_to_reinstall(
    fresh_catalog, monkeypatch, caplog
):
    monkeypatch.setattr(plugins, "entry_points", _no_entry_points)  # an editable install from before
    with caplog.at_level(logging.WARNING, logger="ailab.plugins"):
        reg = default_registry()
    assert "openai" in reg.adapters
    assert "stale" in caplog.text and "pip install -e ." in caplog.text


def test_installed_package_without_builtins_is_an_error_naming_the_fix(fresh_catalog, monkeypatch, caplog):
    monkeypatch.setattr(plugins, "entry_points", _no_entry_points)
    monkeypatch.setattr(plugins, "_declared", functools.cache(lambda: None))  # no pyproject: a wheel
    with caplog.at_level(logging.ERROR, logger="ailab.plugins"):
        assert default_registry().adapters == {}
    assert "declares no ailab.providers entry points" in caplog.text and "pip install -e ." in caplog.text
