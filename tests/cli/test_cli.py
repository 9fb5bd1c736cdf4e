"""The CLI acts on the same lab as `ailab up` (same --config / --data-dir, or their environment variables)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import openai
import yaml
from typer.testing import CliRunner

from ailab.cli import app
from tests.conftest import MASTER, UPSTREAM_KEY, model

runner = CliRunner()


def _lab(openai_upstream, make_gateway):
    cfg = {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
            model("local", "openai/llama", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
        ]
    }
    gw = make_gateway(cfg)
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    for i in range(3):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": f"q {i}"}])
    client.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}], stream=True)
    gw.flush()
    return gw


def test_usage_formats_and_groupings(openai_upstream, make_gateway):
    gw = _lab(openai_upstream, make_gateway)
    args = ["--config", str(gw.config_path), "--data-dir", str(gw.data_dir)]
    out = runner.invoke(app, ["usage", *args, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = {r["model"]: r for r in json.loads(out.stdout)}
    assert rows["gpt"]["requests"] == 3 and rows["local"]["requests"] == 1
    assert rows["gpt"]["prompt_tokens"] == 3 * 5 and rows["local"]["unpriced"] == 1
    out = runner.invoke(app, ["usage", *args, "--by", "provider", "--format", "csv"])
    parsed = list(csv.DictReader(io.StringIO(out.stdout)))
    assert parsed == [{**parsed[0], "provider": "openai", "requests": "4"}]
    out = runner.invoke(app, ["usage", *args, "--by", "day", "--since", "1d"])
    assert out.exit_code == 0 and "DAY" in out.stdout and "REQUESTS" in out.stdout
    out = runner.invoke(app, ["usage", *args, "--by", "key", "--format", "json"])
    assert json.loads(out.stdout)[0]["key"] == "master"


def test_usage_honours_environment_variables(openai_upstream, make_gateway, monkeypatch):
    gw = _lab(openai_upstream, make_gateway)
    monkeypatch.setenv("AILAB_CONFIG", str(gw.config_path))
    monkeypatch.setenv("AILAB_DATA_DIR", str(gw.data_dir))
    out = runner.invoke(app, ["usage", "--format", "json"])
    assert sum(r["requests"] for r in json.loads(out.stdout)) == 4


def test_usage_rejects_bad_options(tmp_path):
    for args, hint in (
        (["--by", "colour"], "--by"),
        (["--since", "soon"], "--since"),
        (["--format", "xml"], "--format"),
    ):
        out = runner.invoke(app, ["usage", "--data-dir", str(tmp_path), *args])
        assert out.exit_code == 2 and hint in out.output


def test_models_lists_without_secrets(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "fast",
                        "litellm_params": {"model": "groq/llama-3.1-8b-instant", "api_key": UPSTREAM_KEY},
                    },
                    {
                        "model_name": "claude",
                        "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": UPSTREAM_KEY},
                    },
                ]
            }
        )
    )
    out = runner.invoke(app, ["models", "--config", str(cfg), "--format", "json"])
    rows = json.loads(out.stdout)
    assert [(r["model"], r["provider"]) for r in rows] == [("fast", "groq"), ("claude", "anthropic")]
    assert rows[0]["api_base"] == "https://api.groq.com/openai/v1"
    assert UPSTREAM_KEY not in out.output
    table = runner.invoke(app, ["models", "--config", str(cfg)])
    assert "fast" in table.stdout and UPSTREAM_KEY not in table.stdout


def test_bad_config_exits_2_with_path(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("router_settings: {num_retries: many}\n")
    out = runner.invoke(app, ["models", "--config", str(cfg)])
    assert out.exit_code == 2 and "router_settings.num_retries" in out.output


def test_version_and_fast_import():
    out = subprocess.run(
        [sys.executable, "-m", "ailab", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("ailab ")
    # The CLI must not drag the server stack in at import (LiteLLM takes ~10 s here).
    probe = "import sys, ailab.cli; print(sorted(m for m in ('aiohttp', 'sqlalchemy', 'genai_prices', 'uvicorn') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
