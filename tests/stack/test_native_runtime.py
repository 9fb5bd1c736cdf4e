"""Native runtime and CLI edges: `--port/--host` reach the supervised lab, a failing child's log is shown with
its exit code, `config check --strict` fails on entries the lab would skip, and read-only commands run
without the providers' credentials in the environment."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ailab.stack.native.supervisor import ProcSpec, Supervisor, log_tail
from tests.stack.conftest import free_port


def _ailab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ailab", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=120,
    )


def test_native_runtime_honours_port_and_host(tmp_path: Path) -> None:
    config = tmp_path / "ailab.yaml"
    config.write_text(yaml.safe_dump({"ailab": {"port": free_port(), "discover_ollama": False}}))
    port = free_port()
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ailab",
            "up",
            "--runtime",
            "native",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = tmp_path / "data" / "stack" / "native.json"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the lab never answered on --port"
            time.sleep(0.1)  # polling interval while waiting on the condition above
        assert json.loads(state.read_text())["components"]["ailab"]["port"] == port
        assert _ailab("down", *common).returncode == 0
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_a_failing_child_shows_its_log_and_exit_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_path = tmp_path / "logs" / "broken.log"
    log_path.parent.mkdir()
    log_path.write_text("--- ailab: starting broken ---\nan older run's line\n")
    script = "import sys; print('config error: port 99999 is out of range'); sys.exit(3)"
    spec = ProcSpec("broken", [sys.executable, "-c", script], dict(os.environ), log_path)
    sup = Supervisor([spec], tmp_path / "state.json", poll_s=0.05)
    child = sup.children["broken"]
    caplog.set_level(logging.WARNING, logger="ailab.stack.native")
    deadline = time.monotonic() + 30
    while child.last_exit is None:
        assert time.monotonic() < deadline, "the child never exited"
        sup.step()
        sup.stopping.wait(0.05)
    sup.stop_all()
    text = caplog.text
    assert "broken exited with 3" in text
    assert "config error: port 99999 is out of range" in text
    assert "an older run's line" not in text, "only the failed run's lines"
    assert log_tail(tmp_path / "missing.log") == []


def test_config_check_strict_fails_on_entries_the_lab_would_skip(tmp_path: Path) -> None:
    config = tmp_path / "ailab.yaml"
    entry = {"model_name": "claude-aws", "litellm_params": {"model": "bedrock/anthropic.claude-3"}}
    ok = {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-x"}}
    config.write_text(yaml.safe_dump({"model_list": [ok, entry]}))
    loose = _ailab("config", "check", "--config", str(config))
    assert loose.returncode == 0 and "1 of 2 model entries served" in loose.stdout
    assert "claude-aws" in loose.stderr and "skipped" in loose.stderr
    strict = _ailab("config", "check", "--strict", "--config", str(config))
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "bedrock" in strict.stderr and "--strict" in strict.stderr


def test_read_only_commands_need_no_provider_credentials(tmp_path: Path) -> None:
    config = tmp_path / "ailab.yaml"
    entry = {
        "model_name": "gpt",
        "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/UNSET_KEY_X"},
    }
    config.write_text(yaml.safe_dump({"model_list": [entry], "ailab": {"discover_ollama": False}}))
    env = {k: v for k, v in os.environ.items() if k != "UNSET_KEY_X"}
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    for command in (["models"], ["usage"], ["collections"]):
        done = _ailab(*command, *common, env=env)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    assert "gpt" in _ailab("models", *common, env=env).stdout
    # What calls a provider (or checks the config for CI) still names the missing variable.
    check = _ailab("config", "check", *common, env=env)
    assert check.returncode == 2 and "UNSET_KEY_X" in check.stderr
