"""Denied requests are audited without flooding the log: one row per principal + action + target per window.

The first denial is written at once (nothing is lost: who, what, when). Repeats within
`access.audit_repeat_window_seconds` are only counted; the next row for the same principal and target (the
first denial after the window, or a flush at shutdown) carries `count`: the denials it stands for, itself and
the repeats since the previous row. Summing `count` over rows gives every denial.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ailab.access.audit import AuditLog

MAX_TRACKED = 10_000  # principals × targets kept in memory before everything pending is written out


@dataclass
class _Window:
    opened: float
    pending: int = 0  # denials since the last row, not yet written
    first_ms: int = 0  # when the first of them happened
    last_ms: int = 0


class DenialGate:
    def __init__(
        self, audit: AuditLog, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.audit = audit
        self.window_s = window_s
        self.clock = clock
        self._open: dict[tuple[str, str, str], _Window] = {}
        self._lock = threading.Lock()

    def denied(self, actor: str, action: str, target: str, **detail: Any) -> None:
        key = (actor, action, target)
        now, now_ms = self.clock(), int(time.time() * 1000)
        with self._lock:
            due = self._due(now)
            win = self._open.get(key)
            if win is not None and now - win.opened < self.window_s:
                if not win.pending:
                    win.first_ms = now_ms
                win.pending += 1
                win.last_ms = now_ms
                write: list[tuple[tuple[str, str, str], int, int, int]] = []
            else:
                carried = win.pending if win is not None else 0
                first = win.first_ms if win is not None and carried else now_ms
                self._open[key] = _Window(now)
                write = [(key, carried + 1, first, now_ms)]
        for k, n, first_ms, last_ms in [*due, *write]:
            self._write(k, n, first_ms, last_ms, detail if k == key else {})

    def flush(self) -> None:
        """Write the counts still pending (at shutdown)."""
        with self._lock:
            due = [(k, w.pending, w.first_ms, w.last_ms) for k, w in self._open.items() if w.pending]
            self._open.clear()
        for k, n, first_ms, last_ms in due:
            self._write(k, n, first_ms, last_ms, {})

    def _due(self, now: float) -> list[tuple[tuple[str, str, str], int, int, int]]:
        """Windows that ended: their pending repeats are written now, so counts do not wait forever."""
        if len(self._open) < MAX_TRACKED:
            ended = [k for k, w in self._open.items() if now - w.opened >= 2 * self.window_s]
        else:
            ended = list(self._open)
        out = []
        for k in ended:
            w = self._open.pop(k)
            if w.pending:
                out.append((k, w.pending, w.first_ms, w.last_ms))
        return out

    def _write(self, key: tuple[str, str, str], n: int, first_ms: int, last_ms: int, detail: Any) -> None:
        actor, action, target = key
        extra = {} if n == 1 else {"first_ms": first_ms, "last_ms": last_ms}
        self.audit.record(actor, action, target, **{"permission": target, **detail, "count": n, **extra})
