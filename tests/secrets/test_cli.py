"""`ailab secrets` through the real Typer app, on a throwaway lab (config, data dir and key in tmp_path)."""

from __future__ import annotations

import base64
import getpass
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ailab.access.audit import AuditLog
from ailab.cli import app
from ailab.config import load_config
from ailab.db import make_engine
from ailab.gateway.deployments import build_deployments
from ailab.gateway.providers.registry import default_registry
from tests.secrets.conftest import Bao

runner = CliRunner()
KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("AILAB_SECRET_KEY", KEY)
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text("ailab:\n  discover_ollama: false\n")
    return ["--config", str(cfg), "--data-dir", str(tmp_path / "data")]


def _run(*args: str, input: str | None = None) -> object:
    return runner.invoke(app, ["secrets", *args], input=input)


def test_set_get_list_rotate_delete(lab: list[str], tmp_path: Path) -> None:
    out = runner.invoke(app, ["secrets", "set", "OPENAI", *lab], input="sk-from-stdin\n")
    assert out.exit_code == 0, out.output
    assert "version 1" in out.stderr and "secret/OPENAI" in out.stderr and "sk-from-stdin" not in out.output
    out = runner.invoke(app, ["secrets", "get", "OPENAI", *lab])
    assert out.exit_code == 0 and out.stdout == "sk-from-stdin\n"
    out = runner.invoke(app, ["secrets", "set", "ANTHROPIC", "--value", "sk-ant", *lab])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["secrets", "list", *lab])
    assert (
        out.exit_code == 0 and "NAME" in out.stdout and "ANTHROPIC" in out.stdout and "OPENAI" in out.stdout
    )
    assert "sk-" not in out.stdout
    out = runner.invoke(app, ["secrets", "rotate", "OPENAI", "--generate", *lab])
    assert out.exit_code == 0, out.output
    generated = out.stdout.strip()
    assert len(generated) >= 40 and "version 2" in out.stderr and "shown once" in out.stderr
    assert runner.invoke(app, ["secrets", "get", "OPENAI", *lab]).stdout.strip() == generated
    out = runner.invoke(app, ["secrets", "rotate", "OPENAI", *lab], input="sk-piped-rotation")
    assert out.exit_code == 0 and out.stdout == "" and "version 3" in out.stderr
    out = runner.invoke(app, ["secrets", "rotate", "OPENAI", "--value", "sk-v4", *lab])
    assert out.exit_code == 0 and "version 4" in out.stderr
    rows = json.loads(runner.invoke(app, ["secrets", "list", "--format", "json", *lab]).stdout)
    assert [(r["name"], r["version"], r["backend"]) for r in rows] == [
        ("ANTHROPIC", 1, "local"),
        ("OPENAI", 4, "local"),
    ]
    assert "sk-" not in json.dumps(rows)
    out = runner.invoke(app, ["secrets", "delete", "OPENAI", *lab])
    assert out.exit_code == 0 and "deleted secret OPENAI" in out.stderr
    # Audited as the operating-system user, never with values.
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'ailab.db'}")
    entries = AuditLog(engine).entries()
    engine.dispose()
    assert {e.actor for e in entries} == {f"cli:{getpass.getuser()}"}
    assert {e.action for e in entries} == {"secret.write", "secret.read", "secret.rotate", "secret.delete"}
    assert "sk-" not in repr(entries) and generated not in repr(entries)


def test_errors_exit_2_with_a_message(lab: list[str]) -> None:
    for args in (["get", "NOPE"], ["delete", "NOPE"], ["rotate", "NOPE", "--generate"]):
        out = runner.invoke(app, ["secrets", *args, *lab])
        assert out.exit_code == 2, (args, out.output)
        assert "secret NOPE not found" in out.stderr
    out = runner.invoke(app, ["secrets", "set", "bad/name", "--value", "v", *lab])
    assert out.exit_code == 2 and "invalid secret name" in out.stderr
    out = runner.invoke(app, ["secrets", "set", "EMPTY", *lab], input="")
    assert out.exit_code == 2 and "no value for EMPTY on stdin" in out.stderr
    runner.invoke(app, ["secrets", "set", "K", "--value", "v", *lab])
    out = runner.invoke(app, ["secrets", "rotate", "K", "--value", "x", "--generate", *lab])
    assert out.exit_code == 2 and "not both" in out.output
    out = runner.invoke(app, ["secrets", "list", "--format", "xml", *lab])
    assert out.exit_code == 2


def test_wrong_key_is_reported(lab: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["secrets", "set", "K", "--value", "v", *lab])
    monkeypatch.setenv("AILAB_SECRET_KEY", base64.urlsafe_b64encode(b"x" * 32).decode())
    out = runner.invoke(app, ["secrets", "get", "K", *lab])
    assert out.exit_code == 2 and "wrong AILAB_SECRET_KEY / key file?" in out.stderr


def test_key_file_from_config(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "lab.key"
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"secrets": {"key_file": str(key_file)}}))
    args = ["--config", str(cfg), "--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, ["secrets", "set", "K", "--value", "v", *args]).exit_code == 0
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(app, ["secrets", "get", "K", *args]).stdout == "v\n"


CONFIG = """\
# my lab
model_list:
  - model_name: gpt   # the main one
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4
      api_key: "os.environ/ANTHROPIC_API_KEY"   # quoted
      api_base: os.environ/ANTHROPIC_BASE
  - model_name: gpt-backup
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: 'os.environ/OPENAI_API_KEY'
  - model_name: groq
    litellm_params:
      model: groq/llama
      api_key: os.environ/GROQ_UNSET_KEY

general_settings:
  master_key: os.environ/LAB_MASTER   # stays: not a model key
ailab:
  discover_ollama: false
"""


def test_import_env_moves_keys_and_rewrites_config(
    lab: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_BASE", "http://127.0.0.1:9/anthropic")
    monkeypatch.setenv("LAB_MASTER", "sk-master-0123456789")
    monkeypatch.delenv("GROQ_UNSET_KEY", raising=False)
    out = runner.invoke(app, ["secrets", "import-env", *lab])
    assert out.exit_code == 0, out.output
    assert "moved  model_list[0].litellm_params.api_key, model_list[2].litellm_params.api_key: " in out.stdout
    assert "os.environ/ANTHROPIC_API_KEY -> secret/ANTHROPIC_API_KEY (version 1)" in out.stdout
    assert (
        "skip   model_list[3].litellm_params.api_key: environment variable GROQ_UNSET_KEY is not set"
        in out.stdout
    )
    assert (
        "kept   general_settings.master_key" in out.stdout
        and "kept   model_list[1].litellm_params.api_base" in out.stdout
    )
    assert "sk-openai-env" not in out.output and "sk-ant-env" not in out.output
    expected = (
        CONFIG.replace("api_key: os.environ/OPENAI_API_KEY", "api_key: secret/OPENAI_API_KEY")
        .replace('"os.environ/ANTHROPIC_API_KEY"', '"secret/ANTHROPIC_API_KEY"')
        .replace("'os.environ/OPENAI_API_KEY'", "'secret/OPENAI_API_KEY'")
    )
    assert cfg.read_text() == expected, "only the moved tokens change; comments and quoting survive"
    assert (tmp_path / "ailab.yaml.bak").read_text() == CONFIG
    # The file still needs GROQ_UNSET_KEY to load (it was left as an environment reference).
    monkeypatch.setenv("GROQ_UNSET_KEY", "g")
    assert runner.invoke(app, ["secrets", "get", "OPENAI_API_KEY", *lab]).stdout == "sk-openai-env\n"
    assert runner.invoke(app, ["secrets", "get", "ANTHROPIC_API_KEY", *lab]).stdout == "sk-ant-env\n"
    # The rewritten file loads, and its deployments now reference the store.
    groups = build_deployments(load_config(cfg).config, default_registry(), warn=lambda _m: None)
    refs = {g: deps[0].api_key_ref for g, deps in groups.items()}
    assert refs["gpt"] == "OPENAI_API_KEY" and refs["claude"] == "ANTHROPIC_API_KEY" and refs["groq"] is None
    # Running it again finds nothing left to move (the unset one is still reported).
    monkeypatch.delenv("GROQ_UNSET_KEY")
    again = runner.invoke(app, ["secrets", "import-env", *lab])
    assert (
        again.exit_code == 0 and "moved" not in again.stdout and "GROQ_UNSET_KEY is not set" in again.stdout
    )


def test_import_env_without_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, ["secrets", "import-env", "--data-dir", str(tmp_path / "d")])
    assert out.exit_code == 2 and "no config file" in out.stderr


def test_vault_backend_from_config(bao: Bao, tmp_path: Path) -> None:
    settings = bao.settings()
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"secrets": settings.model_dump(exclude_none=True)}))
    args = ["--config", str(cfg), "--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, ["secrets", "set", "V", "--value", "vault-value", *args]).exit_code == 0
    assert runner.invoke(app, ["secrets", "get", "V", *args]).stdout == "vault-value\n"
    rows = json.loads(runner.invoke(app, ["secrets", "list", "--format", "json", *args]).stdout)
    assert [(r["name"], r["backend"]) for r in rows] == [("V", "vault")]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"secrets": {**settings.model_dump(exclude_none=True), "vault_token": "nope-tok"}})
    )
    out = runner.invoke(
        app, ["secrets", "get", "V", "--config", str(bad), "--data-dir", str(tmp_path / "data")]
    )
    assert out.exit_code == 2 and "refused access" in out.stderr and "nope-tok" not in out.output
