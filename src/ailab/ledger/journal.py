"""The ledger journal: every usage event, appended to a file of this process's own before the response's
last bytes go out, so that an answered request survives a hard crash (SIGKILL, the OOM killer) of the
process that served it.

A segment is a preallocated file mapped into memory (MAP_SHARED): appending a line is a copy into the
mapping, with no system call and no fsync. The mapped pages belong to the kernel's page cache, so what was
copied stays when the process dies (only a crash of the machine itself can lose it), exactly as a `write()`
would, at a fraction of the cost: a `write()` per request also hands the GIL to the ledger writer thread.
The space is allocated up front (`posix_fallocate`), so a full disk fails a new segment instead of faulting
on a page; the unused tail stays zero bytes. Each process writes its own segments,
`<data>/ledger-journal/journal-<pid>-<ns>.jsonl`, and holds an exclusive `flock` on each until its rows are
committed: a lock that can be taken marks the segment of a process that died, which the next start replays
into the ledger (`ailab.ledger.recovery`), skipping request ids already there.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

JOURNAL_DIR = "ledger-journal"
SEGMENT_GLOB = "journal-*.jsonl"
SEGMENT_BYTES = 4 << 20  # a finished segment is removed once its rows are committed


def journal_dir(data_dir: Path) -> Path:
    return data_dir / JOURNAL_DIR


@dataclass(slots=True)
class Segment:
    """A journal file, its mapping, and the descriptor that holds its lock."""

    path: Path
    fd: int
    map: mmap.mmap

    def retire(self) -> None:
        """Its rows are committed: remove the file, then let go of the lock (so no importer reads it)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # left behind, it is replayed (and skipped row by row) at the next start
            log.warning("could not remove ledger journal %s: %s", self.path.name, exc)
        self.release()

    def release(self) -> None:
        """Keep the file for the next start to replay (its rows are not all committed), and unlock it."""
        try:
            self.map.close()
            os.close(self.fd)
        except (OSError, BufferError) as exc:
            log.warning("could not close ledger journal %s: %s", self.path.name, exc)


class Journal:
    """The current segment of this process, appended to from the event loop only."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.error: str | None = None  # why the last segment could not be made; None once one is
        self.failures = 0
        self._segment: Segment | None = None
        self._pos = 0
        self._retry_at = 0.0  # after a failure, a new segment is tried again from this time on

    def append(self, line: bytes) -> Segment | None:
        """Copy one line (ending in a newline) into the journal; return the segment it finished, if the
        line did not fit in it. Raises OSError when no segment can be made (the event stays in memory)."""
        seg = self._segment
        end = self._pos + len(line)
        if seg is not None and end <= self.segment_bytes:
            seg.map[self._pos : end] = line
            self._pos = end
            return None
        finished = self.detach()
        seg = self._open(max(self.segment_bytes, len(line)))
        seg.map[0 : len(line)] = line
        self._pos = len(line)
        return finished

    def detach(self) -> Segment | None:
        """Hand over the current segment (the next append starts a new one)."""
        seg, self._segment, self._pos = self._segment, None, 0
        return seg

    def _open(self, size: int) -> Segment:
        if self.error is not None and time.monotonic() < self._retry_at:
            raise OSError(self.error)  # a full disk: no system calls per request while it lasts
        path = self.directory / f"journal-{os.getpid()}-{time.time_ns()}.jsonl"
        fd = -1
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
            os.posix_fallocate(fd, 0, size)
            mapped = mmap.mmap(fd, size)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
                path.unlink(missing_ok=True)
            self._failed(exc)
            raise
        if self.error is not None:
            log.warning("the ledger journal works again (%s)", path.name)
            self.error = None
        self._segment = Segment(path, fd, mapped)
        return self._segment

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self._retry_at = time.monotonic() + 1.0
        if self.error is None:
            log.error("ledger journal unavailable: %s (rows stay in memory until written)", exc.strerror)
        self.error = f"journal unavailable: {exc.strerror or exc}"


def segment_lines(data: bytes) -> list[bytes]:
    """The lines of a segment: up to its zero-filled tail."""
    end = data.find(b"\0")
    return (data if end < 0 else data[:end]).splitlines()


def try_lock(path: Path) -> int | None:
    """An fd holding `path`'s lock if no live process holds it (its writer died or finished), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
