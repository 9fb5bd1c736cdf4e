"""Progress for long CLI runs: a live bar on a terminal, a plain line every few seconds otherwise.

Logs of CI jobs and `nohup` runs have no terminal; a bar there prints nothing (or control codes), so
non-TTY runs get one line per `every` seconds on stderr and a last line at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Update = Callable[[int, int | None], None]


class Reporter:
    """What `progress` yields: called with (done, total) as work advances; `stage(text)` says that a
    step without a count has begun (e.g. the search index catching up after the files)."""

    def __init__(self, update: Update, stage: Callable[[str], None]) -> None:
        self._update = update
        self.stage = stage

    def __call__(self, done: int, total: int | None) -> None:
        self._update(done, total)


@contextmanager
def progress(
    label: str, *, quiet: bool = False, every: float = 5.0, stream: TextIO | None = None
) -> Iterator[Reporter]:
    out = stream or sys.stderr
    if quiet and out.isatty():
        yield Reporter(lambda done, total: None, lambda text: None)
    elif out.isatty():
        with _bar(label, out) as reporter:
            yield reporter
    else:
        lines = _Lines(label, out, every)
        yield Reporter(lines.update, lines.stage)
        lines.finish()


@contextmanager
def _bar(label: str, out: TextIO) -> Iterator[Reporter]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(file=out), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield Reporter(
            lambda done, total: bar.update(task, completed=done, total=total),
            lambda text: bar.update(task, description=f"{label} ({text})"),
        )


class _Lines:
    def __init__(self, label: str, out: TextIO, every: float) -> None:
        self.label, self.out, self.every = label, out, every
        self.started = self.last = time.monotonic()
        self.done: int = 0
        self.total: int | None = None
        self.stage_text: str | None = None
        self.printed = False

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def stage(self, text: str) -> None:
        """A step without a count: said at once, and by every line after."""
        self.stage_text = text
        self._print(time.monotonic())

    def finish(self) -> None:
        if self.printed or time.monotonic() - self.started >= self.every:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        head = f"{self.label} ({self.stage_text})" if self.stage_text else self.label
        self.out.write(f"{head}: {self.done}{of} files, {now - self.started:.0f} s\n")
        self.out.flush()
        self.printed = True
