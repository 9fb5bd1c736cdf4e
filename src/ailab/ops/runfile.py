"""`<data>/run/lab.json`: which `ailab up` serves this data dir (pid, address, version, command line).

Written by `ailab up` before it serves and removed when it exits, so restore can refuse a running lab,
doctor can tell "port in use by the lab" from "port in use by something else", and upgrade can restart
the lab with the command line it was started with.

`<data>/run/lab.lock` makes it one lab per data dir: `ailab up` holds an exclusive `flock` on it for its
whole life (the kernel lets go when the process dies, however it dies), and a second `ailab up` that cannot
take it refuses at once, naming the lab that holds it. A held lock is also how the others tell a running lab
from a run file that a killed one left behind (or a pid that was reused).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ailab import __version__
from ailab.stack import pid_alive


@dataclass(frozen=True)
class RunInfo:
    pid: int
    host: str
    port: int
    version: str = __version__
    argv: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def runfile_path(data_dir: Path) -> Path:
    return data_dir / "run" / "lab.json"


def lockfile_path(data_dir: Path) -> Path:
    return data_dir / "run" / "lab.lock"


class LabRunning(RuntimeError):
    """Another `ailab up` holds the data dir."""

    def __init__(self, data_dir: Path, info: RunInfo | None) -> None:
        who = f"pid {info.pid}, {info.url}" if info else "its pid is unknown"
        super().__init__(
            f"a lab is already running on {data_dir} ({who}): stop it first (Ctrl-C or SIGTERM), "
            "or start this one with another --data-dir"
        )
        self.info = info


def lock_data_dir(data_dir: Path, host: str, port: int) -> int:
    """Take the data dir's lock for this process's lifetime; return its descriptor (kept open).
    Raises LabRunning, without touching anything, when another lab holds it."""
    path = lockfile_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner = _lock_owner(data_dir) or read_runfile(data_dir, alive_only=False)
        raise LabRunning(data_dir, owner) from None
    # Who holds it, for the refusal above even if the run file went missing.
    me = RunInfo(pid=os.getpid(), host=host, port=port)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
    return fd


def unlock_data_dir(fd: int) -> None:
    os.close(fd)


def lab_locked(data_dir: Path) -> bool | None:
    """True while a lab holds the data dir's lock, False if none does; None when there is no lock file (a
    lab of a version before the lock, or none ever started)."""
    try:
        fd = os.open(lockfile_path(data_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _lock_owner(data_dir: Path) -> RunInfo | None:
    try:
        return RunInfo(**json.loads(lockfile_path(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_runfile(data_dir: Path, host: str, port: int) -> RunInfo:
    info = RunInfo(pid=os.getpid(), host=host, port=port, argv=[sys.executable, "-m", "ailab", *sys.argv[1:]])
    path = runfile_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(path)
    # Outlives the run: upgrade reports which version last served this data dir.
    (path.parent / "last_version").write_text(info.version + "\n")
    return info


def remove_runfile(data_dir: Path) -> None:
    path = runfile_path(data_dir)
    info = read_runfile(data_dir, alive_only=False)
    # Only the process that wrote it removes it (a second `ailab up` that failed to bind must not).
    if info is not None and info.pid == os.getpid():
        path.unlink(missing_ok=True)


def read_runfile(data_dir: Path, *, alive_only: bool = True) -> RunInfo | None:
    """The running lab, or None; a file left by a process that died is treated as absent."""
    try:
        raw = json.loads(runfile_path(data_dir).read_text())
        info: RunInfo | None = RunInfo(**raw)
    except (OSError, ValueError, TypeError):
        info = None
    if not alive_only:
        return info
    locked = lab_locked(data_dir)
    if locked is None:  # no lock file: the pid is all there is to go by
        return info if info is not None and pid_alive(info.pid) else None
    if not locked:
        return None
    return info if info is not None and pid_alive(info.pid) else _lock_owner(data_dir)


def last_version(data_dir: Path) -> str | None:
    """The ailab version that last served this data dir, if any did."""
    try:
        return (data_dir / "run" / "last_version").read_text().strip() or None
    except OSError:
        return None
