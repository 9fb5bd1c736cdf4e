"""`ailab doctor` against a real `ailab up`: exit codes, the table, --format json, --only."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from ailab.cli import app
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.labproc import run_lab
from tests.upstreams import openai_server


@pytest.fixture
def lab(tmp_path, monkeypatch):
    up = start_upstream("openai", openai_server.make_app)
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_list": [model("gpt", "openai/gpt-4o-mini", f"{up.url}/v1", api_key=UPSTREAM_KEY)],
                "ailab": {"discover_ollama": False},
            }
        )
    )
    data = tmp_path / "data"
    proc, url = run_lab(cfg, data)
    monkeypatch.setenv("AILAB_MASTER_KEY", MASTER)
    try:
        yield up, cfg, data, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        up.server.stop()


def doctor(cfg, data, *args):
    return CliRunner().invoke(app, ["doctor", "--config", str(cfg), "--data-dir", str(data), *args])


def test_doctor_on_a_healthy_lab_exits_0_and_on_a_stopped_upstream_exits_1(lab):
    up, cfg, data, _url = lab
    out = doctor(cfg, data, "--format", "json")
    assert out.exit_code == 0, out.output
    results = {r["name"]: r for r in json.loads(out.stdout)}
    assert len(results) >= 18
    assert {"name", "title", "status", "saw", "fix", "runbook", "seconds"} <= set(results["port"])
    assert results["port"]["status"] == "pass" and "served by this lab" in results["port"]["saw"]
    assert results["upstreams"]["status"] == "pass"
    assert results["ledger"]["status"] == "pass" and "0 rows dropped" in results["ledger"]["saw"]
    assert all(r["status"] != "fail" for r in results.values())

    up.server.stop()
    out = doctor(cfg, data, "--only", "port,upstreams")
    assert out.exit_code == 1
    lines = [line for line in out.stdout.splitlines() if line[:4] in ("PASS", "WARN", "FAIL", "SKIP")]
    assert len(lines) == 2
    fail_line = next(line for line in lines if line.startswith("FAIL"))
    assert "upstreams" in fail_line and "unreachable" in fail_line
    assert fail_line.endswith("→ docs/runbooks/upstream-unreachable.md")


def test_unknown_check_name_is_a_usage_error(tmp_path):
    out = CliRunner().invoke(app, ["doctor", "--data-dir", str(tmp_path), "--only", "port,nope"])
    assert out.exit_code == 2
    assert "unknown check nope" in out.output


def test_list_names_every_check_with_its_runbook():
    out = CliRunner().invoke(app, ["doctor", "--list"])
    assert out.exit_code == 0
    assert "upstreams" in out.stdout and "docs/runbooks/upstream-unreachable.md" in out.stdout
