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


@contextmanager
def progress(
    label: str, *, quiet: bool = False, every: float = 5.0, stream: TextIO | None = None
) -> Iterator[Update]:
    out = stream or sys.stderr
    if quiet and out.isatty():
        yield lambda done, total: None
    elif out.isatty():
        with _bar(label, out) as update:
            yield update
    else:
        lines = _Lines(label, out, every)
        yield lines.update
        lines.finish()


@contextmanager
def _bar(label: str, out: TextIO) -> Iterator[Update]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(file=out), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class _Lines:
    def __init__(self, label: str, out: TextIO, every: float) -> None:
        self.label, self.out, self.every = label, out, every
        self.started = self.last = time.monotonic()
        self.done: int = 0
        self.total: int | None = None
        self.printed = False

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        if self.printed or time.monotonic() - self.started >= self.every:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        self.out.write(f"{self.label}: {self.done}{of} files, {now - self.started:.0f} s\n")
        self.out.flush()
        self.printed = True
