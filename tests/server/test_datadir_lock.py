"""One lab per data dir: a second `ailab up` refuses at once, naming the running lab, and leaves its run
file alone; doctor, upgrade and restore keep seeing the lab that runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from ailab.ops.restore import RestoreError, refuse_running
from ailab.ops.runfile import lab_locked, read_runfile, runfile_path
from tests.conftest import MASTER
from tests.labproc import run_lab
from tests.upstreams.harness import free_port


def _second_up(cfg, data) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ailab", "up", "--config", str(cfg), "--data-dir", str(data)]
    return subprocess.run(
        [*cmd, "--port", str(free_port())],
        env={**os.environ, "AILAB_MASTER_KEY": MASTER},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_lab_on_the_same_data_dir_refuses(tmp_path, workers):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"model_list": [], "ailab": {"discover_ollama": False}}))
    data = tmp_path / "data"
    proc, url = run_lab(cfg, data, "--workers", str(workers))
    try:
        before = runfile_path(data).read_text()
        second = _second_up(cfg, data)
        assert second.returncode == 1
        assert f"pid {proc.pid}" in second.stderr and url in second.stderr, second.stderr
        assert "already running" in second.stderr
        assert runfile_path(data).read_text() == before  # the running lab's run file is untouched
        info = read_runfile(data)
        assert info is not None and info.pid == proc.pid and info.url == url
        with pytest.raises(RestoreError, match=f"pid {proc.pid}"):
            refuse_running(data)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert lab_locked(data) is False and read_runfile(data) is None


def test_a_killed_lab_leaves_nothing_that_blocks_the_next(tmp_path):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"model_list": [], "ailab": {"discover_ollama": False}}))
    data = tmp_path / "data"
    proc, _ = run_lab(cfg, data)
    proc.kill()
    proc.wait(timeout=30)
    assert runfile_path(data).exists()  # left behind by the killed process ...
    assert read_runfile(data) is None  # ... but its lock went with it: nobody runs
    proc, _ = run_lab(cfg, data)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
