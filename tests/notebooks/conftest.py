"""One real `ailab up` for every notebook: loopback OpenAI, Anthropic and Ollama upstreams as its models
(chat and embeddings), a `user` key like the Jupyter component's, and the master key for admin steps."""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, Running, model, start_upstream
from tests.labproc import run_lab
from tests.upstreams import anthropic_server, ollama_server, openai_server

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXAMPLE_APPS = ROOT / "examples" / "apps"


def apps_served() -> bool:
    """Notebook 10 needs the lab to serve apps (`ailab.apps`, built in its own branch)."""
    return importlib.util.find_spec("ailab.apps") is not None and EXAMPLE_APPS.is_dir()


@dataclass
class NotebookLab:
    url: str
    user_key: str  # role `user`, as the stack user's key in the Jupyter component
    admin_key: str
    workdir: Path  # a copy of notebooks/ (with data/): what the notebooks write stays out of the tree


def _config(up: dict[str, Running], apps: bool) -> dict:
    openai_v1 = f"{up['openai'].url}/v1"
    # The example apps call the model group `chat` (examples/apps/README.md).
    chat = [model("chat", "openai/gpt-4o-mini", openai_v1, api_key=UPSTREAM_KEY)] if apps else []
    return {
        "model_list": [
            model("gpt-4o-mini", "openai/gpt-4o-mini", openai_v1, api_key=UPSTREAM_KEY),
            model(
                "claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", up["anthropic"].url, api_key=UPSTREAM_KEY
            ),
            model("llama3.2", "ollama_chat/llama3.2", up["ollama"].url, model_info={"cost_per_hour": 0.05}),
            model("text-embedding-3-small", "openai/text-embedding-3-small", openai_v1, api_key=UPSTREAM_KEY),
            *chat,
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": {"master_key": MASTER},
        "knowledge": {"embedding_model": "text-embedding-3-small", "chat_model": "gpt-4o-mini"},
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.05},
    }


def _user_key(url: str) -> str:
    admin = {"Authorization": f"Bearer {MASTER}"}
    user = httpx.post(f"{url}/api/users", json={"username": "notebooks"}, headers=admin, timeout=30)
    user.raise_for_status()
    key = httpx.post(
        f"{url}/api/keys", json={"user_id": user.json()["id"], "name": "jupyter"}, headers=admin, timeout=30
    )
    key.raise_for_status()
    return str(key.json()["key"])


def _drain(stream: IO[bytes] | None, path: Path) -> None:
    if stream is None:
        return
    with path.open("wb") as out:
        for line in stream:
            out.write(line)
            out.flush()


@pytest.fixture(scope="session")
def notebook_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotebookLab]:
    tmp = tmp_path_factory.mktemp("notebook-lab")
    up = {
        "openai": start_upstream("openai", openai_server.make_app),
        "anthropic": start_upstream("anthropic", anthropic_server.make_app),
        "ollama": start_upstream("ollama", ollama_server.make_app, api_key=None),
    }
    cfg = tmp / "ailab.yaml"
    cfg.write_text(yaml.safe_dump(_config(up, apps_served())))
    if apps_served():
        shutil.copytree(EXAMPLE_APPS, tmp / "apps")  # the apps folder next to ailab.yaml
    workdir = tmp / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AILAB_")]:
            mp.delenv(name)
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "xdg"))  # never the real ~/.config/ailab/secret.key
        proc, url = run_lab(cfg, tmp / "data")
    # Its output goes to a pipe: keep reading it, or a chatty lab would block once the pipe is full.
    log = tmp / "ailab.log"
    threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
    try:
        yield NotebookLab(url, _user_key(url), MASTER, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
            raise
        for r in up.values():
            r.server.stop()
