"""Acceptance: the native runtime runs real JupyterLab and Prometheus; a real Prometheus scrapes the lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.stack.conftest import free_port, need

pytestmark = pytest.mark.timeout(120)


def _ailab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ailab", *args], capture_output=True, text=True, env=env, timeout=60
    )


def _wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def native_lab(tmp_path: Path) -> Iterator[tuple[list[str], Path, dict[str, str]]]:
    need("prometheus")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    config = tmp_path / "ailab.yaml"
    config.write_text(yaml.safe_dump({"ailab": {"port": free_port(), "discover_ollama": False}}))
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    for name in ("jupyter", "prometheus"):
        assert _ailab("install", name, "--port", str(free_port()), *common, env=env).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailab", "up", "--runtime", "native", *common],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield common, tmp_path / "data" / "stack" / "native.json", env
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())["components"]  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError):
        return {}


def _all_healthy(path: Path) -> dict[str, Any] | None:
    comps = _state(path)
    ok = {"ailab", "jupyter", "prometheus"} <= set(comps) and all(c["healthy"] for c in comps.values())
    return comps if ok else None


def test_native_runtime_supervises_jupyter_and_prometheus(native_lab) -> None:
    common, state, env = native_lab
    comps = _wait("ailab, jupyter and prometheus healthy", lambda: _all_healthy(state), 90)
    status = _ailab("status", *common, env=env)
    assert "jupyter" in status.stdout and "healthy" in status.stdout
    # Jupyter got the lab as its OpenAI endpoint, on the native ports.
    jupyter_pid = comps["jupyter"]["pid"]
    os.killpg(jupyter_pid, signal.SIGKILL)
    again = _wait(
        "jupyter restarted", lambda: (c := _all_healthy(state)) and c["jupyter"]["restarts"] >= 1 and c, 90
    )
    assert again["jupyter"]["pid"] != jupyter_pid
    assert "--- ailab: starting jupyter ---" in _ailab("logs", "jupyter", *common, env=env).stdout
    pids = [c["pid"] for c in again.values()]
    down = _ailab("down", *common, env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    for pid in pids:
        _wait(f"pid {pid} gone", lambda pid=pid: not _alive(pid), 20)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the supervisor's parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_real_prometheus_scrapes_a_running_lab(tmp_path: Path, make_gateway, openai_upstream) -> None:
    from ailab.stack.catalog import select
    from ailab.stack.model import RenderContext
    from ailab.stack.monitoring import scrape_config

    gw = make_gateway(
        {"model_list": [model("m", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)]}
    )
    openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    lab_port = int(urllib.parse.urlsplit(gw.url).port or 0)
    prom_port = free_port()
    ctx = RenderContext(
        select(["ailab", "prometheus"]),
        target="native",
        native_ports={"ailab": lab_port, "prometheus": prom_port},
    )
    config = scrape_config(ctx, secrets_dir=None)
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            need("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        query = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(
            "ailab_requests_total"
        )

        def result() -> list[Any]:
            try:
                with urllib.request.urlopen(query, timeout=2) as resp:
                    return json.load(resp)["data"]["result"]  # type: ignore[no-any-return]
            except OSError:
                return []

        series = _wait("ailab_requests_total in Prometheus", result, 60)
        assert series[0]["metric"]["job"] == "ailab" and series[0]["metric"]["model"] == "m"
    finally:
        proc.terminate()
        proc.wait(20)
