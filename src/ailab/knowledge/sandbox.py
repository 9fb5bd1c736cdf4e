"""Parsing in worker processes. A document that makes a parser spin (a backtracking pattern, a huge PDF) or
swell (a decompression bomb, a million lines) costs a worker, never the serving process: each job has a
time limit and a memory limit, and over either the worker is killed and replaced and the job fails with
the reason. A worker that grew while parsing is replaced after its job, so the memory goes back too.

The serving process only waits: one thread per busy worker polls its pipe (and the worker's RSS in /proc)
while the event loop goes on answering."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

POLL = 0.05  # seconds between checks of a busy worker
STARTUP_SECONDS = 120.0  # for a new worker's warm-up (imports, tokenizer): not counted against a job
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Limits:
    seconds: float = 60.0
    memory_mb: int = 1024
    recycle_mb: int = 256  # a worker larger than this after a job is replaced


class JobFailed(Exception):
    """The worker was killed (time, memory) or died; the message says why."""


def _serve(conn: Connection) -> None:
    """A worker's loop: run each (function, args) received and send back ("ok", result) or ("error", why)."""
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:  # a job's failure is its answer; the worker lives on
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        conn.send(reply)


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="ailab-parser")
        self.proc.start()
        child.close()

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as fh:
                return int(fh.read().split()[1]) * _PAGE / 2**20
        except (OSError, IndexError, ValueError):
            return 0.0

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], limits: Limits) -> Any:
        try:
            self.conn.send((fn, args))
        except OSError:
            raise JobFailed("the parser process died") from None
        deadline = time.monotonic() + limits.seconds
        while not self.conn.poll(POLL):
            if not self.proc.is_alive():
                raise JobFailed(f"the parser process died (exit status {self.proc.exitcode})")
            if time.monotonic() > deadline:
                self.kill()
                raise JobFailed(f"parsing took longer than {limits.seconds:g} s; stopped")
            if self.rss_mb() > limits.memory_mb:
                self.kill()
                raise JobFailed(f"parsing needed more than {limits.memory_mb} MiB of memory; stopped")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise JobFailed("the parser process died") from None
        if status == "error":
            raise JobFailed(value)
        return value

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()

    def stop(self) -> None:
        self.conn.close()  # the worker's recv() ends: it exits on its own
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.kill()


class InlinePool:
    """Jobs in a thread of this process, without limits (`ailab ingest --workers 0`)."""

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:  # as in a worker: the job fails, the batch goes on
            raise JobFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def close(self) -> None:
        pass


class ParsePool:
    """`size` worker processes, started on first use; `await pool.run(fn, *args)` runs one job in one."""

    def __init__(self, size: int, limits: Limits, warm: Callable[[], Any] | None = None) -> None:
        """`warm` runs first in each new worker (imports, a tokenizer), outside the per-job time limit."""
        self.size, self.limits, self.warm = max(1, size), limits, warm
        self._ctx = multiprocessing.get_context("forkserver")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="ailab-parse")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:  # at most `size` threads run this: at most `size` workers exist
            worker = self._start()
        if not worker.proc.is_alive():  # it died while idle (e.g. the OOM killer): a fresh one
            self._all.discard(worker)
            worker = self._start()
        try:
            return worker.call(fn, args, self.limits)
        except JobFailed:
            raise
        except BaseException:
            worker.kill()  # interrupted mid-job: its answer would be read by the next job
            raise
        finally:
            self._release(worker)

    def _start(self) -> _Worker:
        worker = _Worker(self._ctx)
        self._all.add(worker)
        if self.warm is not None:
            start = Limits(max(STARTUP_SECONDS, self.limits.seconds), self.limits.memory_mb)
            try:
                worker.call(self.warm, (), start)
            except JobFailed as exc:
                self._all.discard(worker)
                worker.kill()
                raise JobFailed(f"the parser process did not start: {exc}") from None
        return worker

    def _release(self, worker: _Worker) -> None:
        if worker.proc.is_alive() and worker.rss_mb() <= self.limits.recycle_mb:
            self._idle.put(worker)
            return
        self._all.discard(worker)
        if worker.proc.is_alive():
            worker.stop()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        for worker in list(self._all):
            worker.stop()
        self._all.clear()
