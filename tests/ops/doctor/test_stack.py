"""Stack checks: a real Prometheus that does / does not scrape the lab, the apps, what CI renders."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from ailab.db import open_database
from ailab.secrets import open_secret_store
from ailab.stack.catalog import select
from ailab.stack.model import RenderContext
from ailab.stack.monitoring import scrape_config
from ailab.stack.state import load_state, save_state
from tests.conftest import MASTER
from tests.ops.doctor.conftest import (
    code_server_app,
    dify_app,
    install,
    jupyter_app,
    run_check,
    serving,
)
from tests.upstreams.harness import free_port


@dataclass
class Prometheus:
    url: str
    port: int
    config: Path
    proc: subprocess.Popen[bytes]

    def configure(self, config: dict[str, object]) -> None:
        self.config.write_text(yaml.safe_dump(config))

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def lab_target_health(self, port: int) -> str | None:
        data = httpx.get(f"{self.url}/api/v1/targets").json()["data"]["activeTargets"]
        found = [t["health"] for t in data if t["labels"].get("instance") == f"127.0.0.1:{port}"]
        return found[0] if found else None


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (`make test-deps` installs Debian's)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    self_only = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    config.write_text(yaml.safe_dump(self_only))
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield Prometheus(url, port, config, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_prometheus_not_scraping_the_lab_fails_and_passes_once_it_does(make_gateway, prometheus):
    gw = make_gateway({"model_list": []})
    loaded = serving(gw)
    install(loaded.data_dir, "prometheus", "grafana", prometheus=prometheus.port)
    result = run_check(loaded, "metrics")
    assert result.status == "fail" and "does not scrape the lab" in result.saw
    assert result.runbook == "docs/runbooks/grafana-no-metrics.md"

    # The fix: the scrape config the stack renders for the native runtime, which has the lab as a job.
    ctx = RenderContext(
        select(["ailab", "prometheus"]),
        target="native",
        native_ports={"ailab": gw.server.port, "prometheus": prometheus.port},
    )
    config = scrape_config(ctx, secrets_dir=None)
    config["global"]["scrape_interval"] = "1s"
    prometheus.configure(config)
    prometheus.reload()
    deadline = time.monotonic() + 30
    while prometheus.lab_target_health(gw.server.port) != "up" and time.monotonic() < deadline:
        time.sleep(0.2)
    result = run_check(loaded, "metrics")
    assert result.status == "pass", result.saw
    assert f"127.0.0.1:{gw.server.port}/metrics" in result.saw


def test_grafana_without_prometheus_fails_and_nothing_installed_skips(lab_config):
    loaded = lab_config()
    assert run_check(loaded, "metrics").status == "skip"
    install(loaded.data_dir, "grafana")
    assert run_check(loaded, "metrics").status == "fail"


def test_jupyter_unreachable_without_kernels_and_healthy(lab_config, fake_server):
    loaded = lab_config()
    port = free_port()
    install(loaded.data_dir, "jupyter", jupyter=port)
    result = run_check(loaded, "jupyter")
    assert result.status == "fail" and "connection refused" in result.saw

    server = fake_server(jupyter_app({}), port)
    result = run_check(loaded, "jupyter")
    assert result.status == "fail" and "no kernel" in result.saw
    server.stop()

    spec = {"name": "python3", "spec": {"argv": ["python", "-m", "ipykernel_launcher"], "language": "python"}}
    fake_server(jupyter_app({"python3": spec}), port)
    result = run_check(loaded, "jupyter")
    assert result.status == "pass" and "python3" in result.saw


def test_jupyter_token_from_the_stack_secrets_is_sent(lab_config, fake_server):
    loaded = lab_config()
    port = free_port()
    install(loaded.data_dir, "jupyter", jupyter=port)
    fake_server(jupyter_app({"python3": {"name": "python3"}}, token="jt-1"), port)
    engine = open_database(loaded)
    store = open_secret_store(loaded.config.secrets, engine, loaded.data_dir)
    try:
        store.set("stack.JUPYTER_TOKEN", "jt-wrong")
        assert run_check(loaded, "jupyter").status == "fail"
        store.set("stack.JUPYTER_TOKEN", "jt-1")
        assert run_check(loaded, "jupyter").status == "pass"
    finally:
        engine.dispose()


def test_code_server_unreachable_then_healthy(lab_config, fake_server):
    loaded = lab_config()
    port = free_port()
    install(loaded.data_dir, "code-server", code_server=port)
    result = run_check(loaded, "code-server")
    assert result.status == "fail" and result.runbook == "docs/runbooks/vscode-server-unreachable.md"
    fake_server(code_server_app(), port)
    assert run_check(loaded, "code-server").status == "pass"


def test_dify_down_then_its_lab_key_rejected_then_working(make_gateway, fake_server):
    gw = make_gateway({"model_list": []})
    loaded = serving(gw)
    port = free_port()
    install(loaded.data_dir, "dify", dify=port)
    result = run_check(loaded, "dify")
    assert result.status == "fail" and "connection refused" in result.saw

    fake_server(dify_app(), port)
    store = open_secret_store(loaded.config.secrets, gw.app.state.engine, loaded.data_dir)
    store.set("stack.LAB_KEY_DIFY", "sk-revoked")
    result = run_check(loaded, "dify")
    assert result.status == "fail" and "rejects Dify's lab key" in result.saw

    store.set("stack.LAB_KEY_DIFY", MASTER)
    result = run_check(loaded, "dify")
    assert result.status == "pass", result.saw


def test_unknown_component_in_the_stack_fails_ci_until_removed(lab_config):
    loaded = lab_config()
    install(loaded.data_dir, "grafana", "graphana")
    result = run_check(loaded, "ci")
    assert result.status == "fail" and "graphana" in result.saw
    state = load_state(loaded.data_dir)
    state.installed = ["grafana"]
    save_state(loaded.data_dir, state)
    result = run_check(loaded, "ci")
    assert result.status == "pass", result.saw


def test_config_with_an_unknown_key_warns(lab_config):
    result = run_check(lab_config({"ailab": {"prot": 1234}}), "config")
    assert result.status == "warn" and "ailab.prot" in result.saw
    assert run_check(lab_config(), "config").status == "pass"
    json.dumps(result.public())  # the JSON form is plain data
