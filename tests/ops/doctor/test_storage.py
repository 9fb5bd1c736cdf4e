"""Storage checks: a filled-up temp filesystem (a real tmpfs), failed and stale backups."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ailab.ops.doctor import Thresholds
from ailab.ops.doctor.cron import CronError, cron_period
from tests.ops.doctor.conftest import run_check

MIB = 1 << 20


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of our own, so filling it up touches nothing else."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_filled_up_temp_filesystem_fails_and_passes_once_freed(lab_config, small_tmpfs, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(small_tmpfs))
    monkeypatch.setattr(tempfile, "tempdir", None)
    loaded = lab_config()
    limits = Thresholds(disk_min_free_bytes=MIB)  # the 1 GiB floor would fail any 8 MiB disk
    result = run_check(loaded, "disk", thresholds=limits)
    assert result.status == "pass", result.saw
    assert f"temp dir {small_tmpfs}" in result.saw

    filler = small_tmpfs / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * (8 * MIB - 256 * 1024))  # leaves ~3% of the filesystem
    result = run_check(loaded, "disk", thresholds=limits)
    assert result.status == "fail"
    assert f"temp dir {small_tmpfs}" in result.saw

    filler.unlink()
    assert run_check(loaded, "disk", thresholds=limits).status == "pass"


def test_disk_warns_between_the_two_ratios(lab_config, small_tmpfs, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(small_tmpfs))
    (small_tmpfs / "filler").write_bytes(b"\0" * (7 * MIB + 256 * 1024))  # ~6% left
    result = run_check(lab_config(), "disk", thresholds=Thresholds(disk_min_free_bytes=0))
    assert result.status == "warn", result.saw


def _last(data_dir: Path, **record: object) -> None:
    directory = data_dir / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / "lab.tar.gz"
    archive.write_bytes(b"x")
    base = {"ok": True, "path": str(archive), "error": None, "seconds": 1.0}
    (directory / "last.json").write_text(json.dumps({**base, **record}))


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).isoformat(timespec="seconds")


def test_backups_never_failed_stale_and_fresh(lab_config):
    loaded = lab_config({"backup": {"schedule": "0 3 * * *"}})
    result = run_check(loaded, "backups")
    assert result.status == "warn" and "no backup has ever run" in result.saw

    _last(loaded.data_dir, ok=False, error="no space left on device", finished_at=_iso(timedelta(hours=1)))
    result = run_check(loaded, "backups")
    assert result.status == "fail" and "no space left on device" in result.saw

    _last(loaded.data_dir, finished_at=_iso(timedelta(days=3)))  # daily schedule: 3 days is > 2 periods
    result = run_check(loaded, "backups")
    assert result.status == "warn" and "3.0 days old" in result.saw

    _last(loaded.data_dir, finished_at=_iso(timedelta(hours=5)))
    result = run_check(loaded, "backups")
    assert result.status == "pass", result.saw


def test_without_a_schedule_a_backup_may_be_a_week_old(lab_config):
    loaded = lab_config()
    _last(loaded.data_dir, finished_at=_iso(timedelta(days=5)))
    assert run_check(loaded, "backups").status == "pass"
    _last(loaded.data_dir, finished_at=_iso(timedelta(days=15)))
    assert run_check(loaded, "backups").status == "warn"


def test_a_successful_backup_whose_archive_is_gone_warns(lab_config):
    loaded = lab_config()
    _last(loaded.data_dir, finished_at=_iso(timedelta(hours=1)))
    os.unlink(loaded.data_dir / "backups" / "lab.tar.gz")
    result = run_check(loaded, "backups")
    assert result.status == "warn" and "is gone" in result.saw


@pytest.mark.parametrize(
    ("expr", "period"),
    [
        ("0 3 * * *", timedelta(days=1)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0 3 * * 0", timedelta(days=7)),
        ("30 2 * * mon-fri", timedelta(days=3)),  # Friday to Monday
        ("0 0,12 * * *", timedelta(hours=12)),
        ("@monthly", timedelta(days=31)),
        ("0 0 1 1 *", timedelta(days=365)),
    ],
)
def test_cron_period_is_the_longest_gap(expr, period):
    assert cron_period(expr, date(2026, 1, 1)) == period


@pytest.mark.parametrize("expr", ["0 3 * *", "61 * * * *", "0 3 * * */0", "0 0 31 2 *"])
def test_bad_cron_expressions_are_refused(expr):
    with pytest.raises(CronError):
        cron_period(expr)
