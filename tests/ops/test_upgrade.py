"""`ailab upgrade` against a real `ailab up`: migrations come from a plugin (the `ailab.migrations` entry point,
installed as a dist-info on PYTHONPATH, as a real plugin would be), so each test chooses what the "new version"
brings: a migration that fails, one that succeeds, one that breaks the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.labproc import run_lab

PLUGIN = """
from sqlalchemy import text
from ailab.db.migrations import Migration

def create(conn):
    conn.execute(text("CREATE TABLE upgrade_probe (id INTEGER PRIMARY KEY, note TEXT)"))
    conn.execute(text("INSERT INTO upgrade_probe (note) VALUES ('new version')"))

def broken(conn):
    conn.execute(text("ALTER TABLE upgrade_probe ADD COLUMN extra INTEGER"))
    raise RuntimeError("column type not supported")

def breaks_start(conn):
    conn.execute(text("DROP TABLE users"))

STEPS = {STEPS}

def migrations():
    return [Migration(name, globals()[fn]) for name, fn in STEPS]
"""


def install_plugin(root: Path, steps: list[tuple[str, str]]) -> dict[str, str]:
    """A plugin distribution on PYTHONPATH; returns the environment that sees it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ailab_probe_plugin.py").write_text(PLUGIN.replace("{STEPS}", repr(steps)))
    info = root / "ailab_probe_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ailab-probe-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ailab.migrations]\nprobe = ailab_probe_plugin:migrations\n")
    # The plugin first, then whatever tree the tests run against (PYTHONPATH=src in a worktree).
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "AILAB_MASTER_KEY": MASTER}


def write_config(tmp_path: Path, upstream_url: str) -> Path:
    cfg = tmp_path / "ailab.yaml"
    entry = model("m", "openai/gpt-4o-mini", f"{upstream_url}/v1", api_key=UPSTREAM_KEY)
    cfg.write_text(yaml.safe_dump({"model_list": [entry], "ailab": {"discover_ollama": False}}))
    return cfg


def upgrade(cfg: Path, data: Path, env: dict[str, str], *args: str) -> tuple[int, dict]:
    cmd = [sys.executable, "-m", "ailab", "upgrade", "--config", str(cfg), "--data-dir", str(data)]
    done = subprocess.run(
        [*cmd, "--format", "json", *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def chat(url: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10
    )
    return r.status_code


def tables(data: Path) -> set[str]:
    return set(sa.inspect(sa.create_engine(f"sqlite:///{data / 'ailab.db'}")).get_table_names())


def migrations(data: Path) -> list[str]:
    with sa.create_engine(f"sqlite:///{data / 'ailab.db'}").connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT name FROM ailab_migrations"))]


def ledger_rows(data: Path) -> int:
    with sa.create_engine(f"sqlite:///{data / 'ailab.db'}").connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM ledger_requests")).scalar_one())


def wait_rows(data: Path, n: int) -> None:
    deadline = time.monotonic() + 10
    while ledger_rows(data) < n and time.monotonic() < deadline:
        time.sleep(0.1)


def test_failing_migration_rolls_back_and_the_lab_keeps_serving(openai_upstream, tmp_path):
    cfg, data = write_config(tmp_path, openai_upstream.url), tmp_path / "data"
    proc, url = run_lab(cfg, data)
    try:
        assert chat(url) == 200
        wait_rows(data, 1)
        before = (tables(data), migrations(data))
        env = install_plugin(
            tmp_path / "plugin", [("probe_0001_create", "create"), ("probe_0002_alter", "broken")]
        )
        code, report = upgrade(cfg, data, env)
        assert code == 1
        assert report["outcome"] == "rolled back"
        assert (
            "probe_0002_alter failed" in report["detail"] and "column type not supported" in report["detail"]
        )
        assert "keeps serving the old version" in report["detail"]
        assert report["pending"] == ["probe_0001_create", "probe_0002_alter"] and report["applied"] == []
        assert Path(report["backup"]).is_file()
        # The first step's table and row went with the transaction; the lab was never stopped.
        assert (tables(data), migrations(data)) == before
        assert proc.poll() is None and chat(url) == 200
        wait_rows(data, 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_successful_upgrade_restarts_the_lab_on_the_new_schema(openai_upstream, tmp_path):
    cfg, data = write_config(tmp_path, openai_upstream.url), tmp_path / "data"
    proc, url = run_lab(cfg, data)
    new_pid = None
    try:
        assert chat(url) == 200
        env = install_plugin(tmp_path / "plugin", [("probe_0001_create", "create")])
        code, report = upgrade(cfg, data, env)
        assert code == 0, report
        assert report["outcome"] == "upgraded" and report["applied"] == ["probe_0001_create"]
        assert report["gate"].startswith("ready")
        assert proc.wait(30) == -signal.SIGTERM  # the old process drained and stopped
        new_pid = json.loads((data / "run" / "lab.json").read_text())["pid"]
        assert new_pid != proc.pid and chat(url) == 200  # same address, new process
        assert "upgrade_probe" in tables(data) and "probe_0001_create" in migrations(data)
        code, again = upgrade(cfg, data, env, "--dry-run")
        assert code == 0 and again["pending"] == [] and again["outcome"] == "planned"
    finally:
        if proc.poll() is None:
            proc.kill()
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)


def test_a_version_that_does_not_start_is_rolled_back_to_the_backup(openai_upstream, tmp_path):
    cfg, data = write_config(tmp_path, openai_upstream.url), tmp_path / "data"
    proc, url = run_lab(cfg, data)
    assert chat(url) == 200
    wait_rows(data, 1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    before = (tables(data), migrations(data), ledger_rows(data))
    env = install_plugin(tmp_path / "plugin", [("probe_0003_drop_users", "breaks_start")])
    code, report = upgrade(cfg, data, env, "--gate-timeout", "30")
    assert code == 1, report
    assert report["outcome"] == "rolled back" and report["applied"] == ["probe_0003_drop_users"]
    assert "exited with status" in report["gate"]
    assert "restored from" in report["detail"]
    assert (tables(data), migrations(data), ledger_rows(data)) == before


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    data = tmp_path / "data"
    env = install_plugin(tmp_path / "plugin", [("probe_0001_create", "create")])
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ailab.config import load_config; from ailab.db import "
            "open_database; open_database(load_config(sys.argv[1], sys.argv[2])).dispose()",
            str(cfg),
            str(data),
        ],
        env=env,
        check=True,
        timeout=60,
    )
    done = subprocess.run(
        [sys.executable, "-m", "ailab", "upgrade", "--config", str(cfg), "--data-dir", str(data)],
        env={**os.environ, "AILAB_MASTER_KEY": MASTER},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "migrated by a newer ailab (migrations probe_0001_create are unknown" in done.stderr


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_config_check(tmp_path, strict, code):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}, "no_such_key": 1}))
    args = [sys.executable, "-m", "ailab", "config", "check", "--config", str(cfg)]
    done = subprocess.run(
        [*args, *(["--strict"] if strict else [])], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code
    assert "no_such_key" in done.stderr


def test_config_check_names_the_bad_key(tmp_path):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"router_settings": {"num_retries": "many"}}))
    done = subprocess.run(
        [sys.executable, "-m", "ailab", "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "num_retries" in done.stderr
