"""Parsing in worker processes (real ones): a job over its time or memory limit kills its worker, fails
with the reason, and the next job gets a fresh worker; a job that raises fails alone."""

from __future__ import annotations

import os
import time

import pytest

from ailab.knowledge.sandbox import JobFailed, Limits, ParsePool


def _grow(mb: int) -> int:
    block = b"x" * (mb * 2**20)  # touched memory: it counts in the resident set
    time.sleep(30)
    return len(block)


def _pid() -> int:
    return os.getpid()


def _ready() -> None:
    """A no-op warm-up: a worker's start is then not counted against its first job."""


@pytest.fixture
async def pool():
    p = ParsePool(1, Limits(seconds=2, memory_mb=200, recycle_mb=150), warm=_ready)
    yield p
    p.close()


async def test_a_job_over_time_is_killed_and_the_worker_replaced(pool):
    first = await pool.run(_pid)
    assert await pool.run(_pid) == first  # a healthy worker is reused
    with pytest.raises(JobFailed, match="longer than 2 s"):
        await pool.run(time.sleep, 3600)
    second = await pool.run(_pid)
    assert second != first and second != os.getpid()


async def test_a_job_over_memory_is_killed():
    pool = ParsePool(1, Limits(seconds=600, memory_mb=200), warm=_ready)
    try:
        with pytest.raises(JobFailed, match="more than 200 MiB"):
            await pool.run(_grow, 600)
        assert await pool.run(len, "still works") == 11
    finally:
        pool.close()


async def test_a_job_that_raises_fails_alone(pool):
    first = await pool.run(_pid)
    with pytest.raises(JobFailed, match="ZeroDivisionError"):
        await pool.run(divmod, 1, 0)
    assert await pool.run(_pid) == first


def _slow_warm() -> None:
    time.sleep(3)  # longer than a job may take


async def test_a_new_workers_warm_up_is_not_counted_against_its_first_job():
    pool = ParsePool(1, Limits(seconds=2, memory_mb=200), warm=_slow_warm)
    try:
        assert await pool.run(len, "abc") == 3
    finally:
        pool.close()


async def test_a_worker_that_died_while_idle_is_replaced(pool):
    import signal

    first = await pool.run(_pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{first}") and time.monotonic() < deadline:  # until it is reaped
        time.sleep(0.01)
    assert await pool.run(len, "ok") == 2
    assert await pool.run(_pid) != first
