"""Docs that users copy from must work: the configuration example loads, builds and names real providers."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ailab.cli import app
from ailab.config import load_config
from ailab.gateway.deployments import build_deployments
from ailab.gateway.providers.registry import default_registry

DOCS = Path(__file__).resolve().parents[1] / "docs"


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)


def test_configuration_example_loads_without_warnings(tmp_path, monkeypatch):
    for name in (
        "OPENAI_API_KEY",
        "AZURE_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "AILAB_MASTER_KEY",
    ):
        monkeypatch.setenv(name, "x")
    (block,) = yaml_blocks(DOCS / "configuration.md")
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(block)
    loaded = load_config(cfg, tmp_path)
    assert loaded.warnings == []
    groups = build_deployments(loaded.config, default_registry())
    assert set(groups) == {"gpt-4o", "claude", "gemini", "llama", "embed"}
    assert len(groups["gpt-4o"]) == 2


def test_cli_help_lists_documented_commands():
    out = CliRunner().invoke(app, ["--help"]).stdout
    for command in ("up", "models", "usage", "version"):
        assert command in out
    usage_help = CliRunner().invoke(app, ["usage", "--help"]).stdout
    assert "--since" in usage_help and "--by" in usage_help


def test_security_doc_matrix_matches_the_policy():
    from ailab.access.policy import BUILTIN_ROLES, PERMISSIONS, holds
    from ailab.access.principal import Principal

    text = (DOCS / "security.md").read_text()
    for perm in PERMISSIONS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{perm}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")][-3:]
        for role, cell in zip(("admin", "analyst", "user"), cells, strict=True):
            p = Principal(id="x", kind="user", role=role, permissions=BUILTIN_ROLES[role])
            assert (cell == "✓") == holds(p, perm), (perm, role)
