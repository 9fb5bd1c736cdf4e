"""The data dir is 0700 and every database, WAL/SHM and run file in it 0600, whatever the umask."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import httpx
import yaml

from tests.conftest import MASTER
from tests.labproc import run_lab


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        if not p.is_symlink():
            out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    return out


def _assert_private(root: Path) -> dict[str, int]:
    modes = _modes(root)
    wide = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not wide, f"readable by others: {wide}"
    return modes


def test_a_running_lab_keeps_its_data_dir_private_under_umask_000(tmp_path):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    data = tmp_path / "data"
    old = os.umask(0)
    try:
        proc, url = run_lab(cfg, data)
    finally:
        os.umask(old)
    try:
        headers = {"Authorization": f"Bearer {MASTER}"}
        assert httpx.post(f"{url}/api/projects", json={"name": "p"}, headers=headers).status_code == 201
        modes = _assert_private(data)
        assert modes["."] == 0o700
        assert modes["ailab.db"] == 0o600
        assert any(name.endswith("-wal") for name in modes), sorted(modes)  # WAL open while serving
        assert any("run" in name for name in modes), sorted(modes)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    _assert_private(data)


def test_cli_commands_narrow_an_old_wide_data_dir(tmp_path):
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    (data / "leftover.db").write_text("x")
    (data / "leftover.db").chmod(0o666)
    cmd = [sys.executable, "-m", "ailab", "users", "add", "alice", "--data-dir", str(data)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    modes = _assert_private(data)
    assert modes["."] == 0o700 and modes["ailab.db"] == 0o600 and modes["leftover.db"] == 0o600
