"""Scheduled backups inside `ailab up`: `backup.schedule` is a cron expression (e.g. "0 3 * * *", local time).

Every worker process starts the schedule task, and exactly one runs it: the one holding an exclusive
`fcntl` lock on `<data>/run/backup-schedule.lock`. The others retry the lock now and then, so when the
runner exits another worker takes over. The backup itself runs in a thread; its outcome, failures
included, is in `<backup dir>/last.json` (see `ailab doctor`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ailab.config import LoadedConfig

log = logging.getLogger("ailab.backup")

LOCK_FILE = Path("run") / "backup-schedule.lock"
MAX_SLEEP_S = 60.0  # re-read the clock at least this often (suspend, clock changes)


class ScheduleLock:
    """An exclusive, non-blocking flock: held by one open file at a time, released when it closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> bool:
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def next_run(expr: str, after: datetime) -> datetime:
    from croniter import croniter

    nxt: datetime = croniter(expr, after).get_next(datetime)
    return nxt


async def _sleep_until(when: datetime) -> None:
    while True:
        left = (when - datetime.now().astimezone()).total_seconds()
        if left <= 0:
            return
        await asyncio.sleep(min(left, MAX_SLEEP_S))


async def run_schedule(
    loaded: LoadedConfig,
    *,
    job: Callable[[], Any] | None = None,
    lock_retry_s: float = 30.0,
) -> None:
    """Run `job` (a backup) at each time of the cron expression, in the one process holding the lock."""
    expr = loaded.config.backup.schedule
    if not expr:
        return
    work = job or _backup_job(loaded)
    lock = ScheduleLock(loaded.data_dir / LOCK_FILE)
    try:
        while True:  # another worker runs the schedule; take over if it goes away
            if lock.acquire():
                break
            await asyncio.sleep(lock_retry_s)
        log.info("backups scheduled (%s) in process %d", expr, os.getpid())
        while True:
            await _sleep_until(next_run(expr, datetime.now().astimezone()))
            try:
                await asyncio.to_thread(work)
            except Exception as exc:  # recorded in last.json by create_backup; the schedule goes on
                log.error("scheduled backup failed: %s", exc)
    finally:
        lock.release()


def _backup_job(loaded: LoadedConfig) -> Callable[[], Any]:
    def job() -> None:
        from ailab.ops.backup import create_backup

        result = create_backup(loaded)
        log.info("scheduled backup written: %s (%.1f s)", result.path, result.seconds)

    return job


def start_schedule(loaded: LoadedConfig) -> asyncio.Task[None]:
    return asyncio.create_task(run_schedule(loaded), name="ailab-backup-schedule")
