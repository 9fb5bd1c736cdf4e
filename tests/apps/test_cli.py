"""`ailab apps list|show|validate|run`."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from ailab.cli.main import app as cli
from tests.conftest import MASTER, UPSTREAM_KEY, model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"


def config(tmp_path: Path, **extra: object) -> list[str]:
    cfg = tmp_path / "ailab.yaml"
    base = {"apps_dir": str(EXAMPLES), "general_settings": {"master_key": MASTER}, **extra}
    cfg.write_text(yaml.safe_dump(base))
    return ["-c", str(cfg), "--data-dir", str(tmp_path / "data")]


def test_list_show_and_validate(tmp_path: Path) -> None:
    opts = config(tmp_path, model_list=[model("chat", "openai/gpt-4o-mini", "http://127.0.0.1:9/v1")])
    r = CliRunner().invoke(cli, ["apps", "list", *opts])
    assert r.exit_code == 0 and "docs-qa" in r.stdout and "sql-schema" in r.stdout
    r = CliRunner().invoke(cli, ["apps", "show", "meeting-notes", *opts])
    assert (
        r.exit_code == 0
        and yaml.safe_load(r.stdout)["parameters"]["response_format"]["type"] == "json_schema"
    )
    r = CliRunner().invoke(cli, ["apps", "validate", *opts])
    assert r.exit_code == 0, r.output
    assert "3 app(s) valid" in r.stdout


def test_validate_reports_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": "nope", "parameters": {"top_p": 3}}))
    r = CliRunner().invoke(cli, ["apps", "validate", str(bad), *config(tmp_path)])
    assert r.exit_code == 1
    assert f"{bad}: parameters.top_p: Input should be less than or equal to 1" in r.output
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"model": "nope"}))
    r = CliRunner().invoke(cli, ["apps", "validate", str(ok), *config(tmp_path)])
    assert r.exit_code == 1 and f"{ok}: model: model group 'nope' is not served by this lab" in r.output


def test_run_calls_the_app_in_process(tmp_path: Path, openai_upstream) -> None:
    chat = model("chat", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    opts = config(tmp_path, model_list=[chat], ailab={"discover_ollama": False})
    r = CliRunner().invoke(
        cli, ["apps", "run", "meeting-notes", "Ana ships Friday.", "--var", "team=ops", *opts]
    )
    assert r.exit_code == 0, r.output
    assert "echo: Ana ships Friday." in r.stdout
    sent = openai_upstream.up.requests("/chat/completions")[-1]["body"]
    assert 'the team "ops"' in sent["messages"][0]["content"]
    r = CliRunner().invoke(cli, ["usage", "--by", "app", "--format", "json", *opts])
    assert r.exit_code == 0 and '"app": "meeting-notes"' in r.stdout
    r = CliRunner().invoke(cli, ["apps", "run", "meeting-notes", "x", "--var", "nope=1", *opts])
    assert r.exit_code == 2 and "has no variable 'nope'" in r.output
