"""The rendered lab is the user's lab: their models, router and knowledge settings, no credential in a file.

The end-to-end test renders a Compose project, then starts `ailab up --config <rendered ailab.yaml>` as the
container would, with the service's environment from the rendered files (the service hosts postgres and
redis mapped to servers on loopback), and asks the user's models through the real OpenAI SDK.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from typer.testing import CliRunner

from ailab.cli import app
from ailab.stack.labconfig import portable
from tests.conftest import UPSTREAM_KEY, fresh_pg_database, model
from tests.stack.services import clean_environ, compose_environment, redis_server, start_lab, stop

PLAIN_PASSWORD = "pg-plain-Passw0rd-marker"
HEADER_TOKEN = "hdr-token-marker-77"


def user_config(base: str) -> dict[str, Any]:
    return {
        "model_list": [
            model("gpt-plain", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
            model("gpt-env", "openai/gpt-4o", base, api_key="os.environ/MY_UPSTREAM_KEY"),
        ],
        "router_settings": {"fallbacks": [{"gpt-plain": ["gpt-env"]}], "num_retries": 1},
        "litellm_settings": {"request_timeout": 30},
        "knowledge": {"chunk_tokens": 128, "top_k": 3},
        "limits": {"default_max_tokens": 512},
        "access": {"session_ttl_hours": 4},
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.05},
    }


def _render(tmp_path: Path, cfg: dict[str, Any], kind: str = "compose") -> Path:
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    args = ["render", "compose"] if kind == "compose" else ["export", "kubernetes"]
    result = CliRunner().invoke(
        app, [*args, "--config", str(path), "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_credentials_become_references(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "openai/x", "api_key": "sk-plain"}},
            {"model_name": "b", "litellm_params": {"model": "openai/x", "api_key": "os.environ/K"}},
            {"model_name": "c", "litellm_params": {"model": "openai/x", "api_key": "secret/S"}},
            {
                "model_name": "d",
                "litellm_params": {
                    "model": "openai/x",
                    "api_base": f"https://u:{PLAIN_PASSWORD}@example.org/v1",
                    "extra_headers": {"X-Token": HEADER_TOKEN},
                },
            },
        ],
        "environment_variables": {"OPENAI_API_KEY": "sk-env-var"},
        "knowledge": {"stores": {"qdrant": {"url": "http://q:6333", "api_key": "qk"}}},
        "os_missing": "os.environ/UNSET_ONE",
        "general_settings": {"master_key": "sk-host-master", "database_url": "postgresql://u:pw@h/db"},
    }
    store = {"S": "from-store"}
    out = portable(raw, {"K": "from-env"}, store.get)
    text = yaml.safe_dump(out.config)
    for value in ("sk-plain", "from-env", "from-store", PLAIN_PASSWORD, HEADER_TOKEN, "sk-env-var", "qk"):
        assert value not in text
        assert any(value in v for v in out.env.values())
    params = [m["litellm_params"] for m in out.config["model_list"]]
    assert params[1]["api_key"] == "os.environ/K"
    assert params[2]["api_key"] == "os.environ/S"
    assert params[0]["api_key"].startswith("os.environ/AILAB_CFG_MODEL_LIST_0")
    assert out.missing == {"UNSET_ONE": "os_missing"}
    # The stack provides these itself: the host's values are not carried anywhere.
    assert out.config["general_settings"] == {}
    assert not [v for v in out.env.values() if "sk-host-master" in v or "pw@h" in v]
    assert portable(raw, {}, store.get, keep_secret_refs=True).config["model_list"][2]["litellm_params"][
        "api_key"
    ] == ("secret/S")


def test_rendered_kubernetes_carries_the_users_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_UPSTREAM_KEY", UPSTREAM_KEY)
    out = _render(tmp_path, user_config("http://upstream.example/v1"), "kubernetes")
    docs = list(yaml.safe_load_all((out / "manifests/ailab.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    lab = yaml.safe_load(config_map["data"]["ailab.yaml"])
    assert [m["model_name"] for m in lab["model_list"]] == ["gpt-plain", "gpt-env"]
    assert lab["limits"] == {"default_max_tokens": 512}  # the store itself comes from AILAB_LIMITS_BACKEND
    assert lab["knowledge"]["store"] == "qdrant"
    container = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]["containers"][
        0
    ]
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("key") for e in container["env"]}
    assert refs["MY_UPSTREAM_KEY"] == "MY_UPSTREAM_KEY"
    secrets_env = (out / "manifests/secrets.env").read_text()
    assert f"MY_UPSTREAM_KEY={UPSTREAM_KEY}" in secrets_env
    for path in out.rglob("*"):
        if path.is_file() and path.name != "secrets.env":
            assert UPSTREAM_KEY not in path.read_text(), path


def test_rendered_compose_lab_serves_the_users_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openai_upstream, postgres_server: str
) -> None:
    monkeypatch.setenv("MY_UPSTREAM_KEY", UPSTREAM_KEY)
    out = _render(tmp_path, user_config(f"{openai_upstream.url}/v1"))

    for path in out.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert UPSTREAM_KEY not in path.read_text(), f"credential in {path}"
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
    rendered = out / "config/ailab/ailab.yaml"
    lab = yaml.safe_load(rendered.read_text())
    assert lab["router_settings"]["fallbacks"] == [{"gpt-plain": ["gpt-env"]}]
    assert lab["knowledge"]["chunk_tokens"] == 128 and lab["knowledge"]["store"] == "qdrant"
    assert lab["limits"] == {"default_max_tokens": 512}
    assert "database_url" not in lab["general_settings"]
    assert lab["access"] == {"session_ttl_hours": 4}

    env = compose_environment(out, "ailab")
    assert env["AILAB_LEDGER"] == "postgres" and env["AILAB_LIMITS_BACKEND"] == "redis"
    with redis_server(password="rpw") as redis_url:
        # The container's service names, mapped to loopback servers.
        env.update(
            {
                "AILAB_CONFIG": str(rendered),
                "AILAB_DATA_DIR": str(tmp_path / "container-data"),
                "AILAB_DATABASE_URL": fresh_pg_database(postgres_server, "rendered"),
                "AILAB_REDIS_URL": redis_url,
                "AILAB_QDRANT_URL": "http://127.0.0.1:9",
            }
        )
        proc, url = start_lab({**clean_environ(), **env})
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=env["AILAB_MASTER_KEY"], max_retries=0)
            for name in ("gpt-plain", "gpt-env"):
                reply = client.chat.completions.create(
                    model=name, messages=[{"role": "user", "content": "hello"}]
                )
                assert reply.choices[0].message.content
            assert sorted(m.id for m in client.models.list().data) == ["gpt-env", "gpt-plain"]
        finally:
            log = stop(proc)
    assert len(openai_upstream.up.requests("/chat/completions")) == 2
    assert UPSTREAM_KEY not in log
