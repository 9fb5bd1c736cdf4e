"""docs/deploy.md cannot drift: every `--set` key it shows exists in the chart's values, every `ailab`
command and option it shows exists, and the README links it and says how to change the port."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ailab.cli import app
from ailab.stack.catalog import select
from ailab.stack.helm import render_kubernetes
from ailab.stack.model import RenderContext
from tests.stack.conftest import fake_secrets

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "deploy.md").read_text()


def test_every_set_key_exists_in_the_chart_values(tmp_path: Path) -> None:
    ctx = RenderContext(select(["ailab"]))
    render_kubernetes(ctx, fake_secrets(ctx)).write(tmp_path)
    values = yaml.safe_load((tmp_path / "chart/values.yaml").read_text())
    keys = re.findall(r"--set(?:-json)? '?([A-Za-z0-9_.]+)=", DOC)
    assert len(keys) > 10
    for key in keys:
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, (
                f"docs/deploy.md: --set {key} is not a chart value"
            )
            node = node[part]


def test_every_ailab_command_shown_exists() -> None:
    runner = CliRunner()
    for line in re.findall(r"^(ailab [^#\n]*)", DOC, flags=re.M):
        words = [w for w in line.split() if not w.startswith("<")]
        command = [w for w in words[1:] if not w.startswith("-")][:2]
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        out = runner.invoke(app, [*command, "--help"])
        if out.exit_code != 0:  # `ailab install phase1`: the second word is an argument
            out = runner.invoke(app, [command[0], "--help"])
        assert out.exit_code == 0, line
        for option in options:
            assert option in out.stdout, f"{line}: {option}"


def test_readme_links_deploy_and_says_how_to_change_the_port() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/deploy.md" in readme
    assert "--port" in readme and "AILAB_PORT" in readme
    assert "pip install local-ai-lab" in readme
    for doc in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        lines = [ln for ln in doc.read_text().splitlines() if "unrelated" not in ln]  # the warning itself
        assert not re.search(r"pip install (-U )?ailab\b", "\n".join(lines)), doc
