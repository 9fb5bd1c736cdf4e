"""docs/knowledge.md: its configuration example is valid, and the commands it shows exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ailab.cli import app
from ailab.knowledge.service import KnowledgeSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "knowledge.md"


def test_configuration_example_is_valid():
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    settings = KnowledgeSettings.model_validate(yaml.safe_load(block)["knowledge"])
    assert settings.store == "embedded" and settings.stores["qdrant"]["url"].startswith("http")


def test_documented_commands_exist():
    out = CliRunner().invoke(app, ["--help"]).stdout
    for command in ("collections", "ingest", "search", "ask", "knowledge"):
        assert command in out
    assert "--from" in CliRunner().invoke(app, ["knowledge", "migrate", "--help"]).stdout
