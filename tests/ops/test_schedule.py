"""`backup.schedule`: a cron expression run inside `ailab up` by exactly one process (an fcntl lock in the
data dir), taken over by another when that one goes away; failures are recorded for doctor."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from ailab.config import ConfigError, load_config
from ailab.ops.backup import read_last
from ailab.ops.schedule import LOCK_FILE, ScheduleLock, next_run, run_schedule
from tests.ops.conftest import small_lab

EVERY_SECOND = "* * * * * *"  # croniter's optional 6th field: seconds

RUNNER = """
import asyncio, os, sys
from pathlib import Path
from ailab.config import load_config
from ailab.ops.schedule import run_schedule

loaded = load_config(sys.argv[1], sys.argv[2])
out = Path(sys.argv[3])
def job():
    with open(out, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
print("started", flush=True)
asyncio.run(run_schedule(loaded, job=job, lock_retry_s=0.1))
"""


def test_next_run_follows_the_cron_expression() -> None:
    assert next_run("0 3 * * *", datetime(2026, 11, 24, 10, 0)) == datetime(2026, 11, 25, 3, 0)


def test_an_invalid_schedule_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump({"backup": {"schedule": "every night"}}))
    with pytest.raises(ConfigError, match=r"backup\.schedule: .*not a cron expression"):
        load_config(path, tmp_path / "data")


def test_the_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    a, b = ScheduleLock(tmp_path / "s.lock"), ScheduleLock(tmp_path / "s.lock")
    assert a.acquire() and not b.acquire()
    a.release()
    assert b.acquire() and not a.acquire()
    b.release()


def _wait_lines(path: Path, n: int, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} runs in {timeout} s")


def test_one_process_runs_the_schedule_and_another_takes_over(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path, backup={"schedule": EVERY_SECOND})
    runs = tmp_path / "runs.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-c", RUNNER, str(loaded.path), str(loaded.data_dir), str(runs)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == b"started"
        first = _wait_lines(runs, 3)
        assert len(set(first)) == 1, f"two processes ran the schedule: {first}"
        runner = next(p for p in procs if str(p.pid) == first[0])
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        after = _wait_lines(runs, len(first) + 2)[len(first) :]
        survivor = next(p for p in procs if p is not runner)
        assert set(after) == {str(survivor.pid)}
    finally:
        for p in procs:
            p.kill()
            p.wait()


async def test_two_schedulers_in_one_process_still_run_once(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path, backup={"schedule": EVERY_SECOND})
    runs: list[str] = []
    tasks = [
        asyncio.create_task(run_schedule(loaded, job=lambda n=n: runs.append(n), lock_retry_s=0.05))
        for n in ("a", "b")
    ]
    while len(runs) < 2:
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(set(runs)) == 1
    assert ScheduleLock(loaded.data_dir / LOCK_FILE).acquire(), "the lock is released on cancel"


def test_ailab_up_runs_the_schedule_and_records_the_outcome(make_gateway, openai_upstream) -> None:
    gw = make_gateway({"backup": {"schedule": EVERY_SECOND, "keep": 2}})
    loaded = load_config(gw.config_path, gw.data_dir)
    deadline = time.monotonic() + 20
    while (last := read_last(loaded)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert last is not None and last["ok"], last
    assert Path(last["path"]).parent == gw.data_dir / "backups"
