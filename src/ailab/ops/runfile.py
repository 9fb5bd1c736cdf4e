"""`<data>/run/lab.json`: which `ailab up` serves this data dir (pid, address, version, command line).

Written by `ailab up` before it serves and removed when it exits, so restore can refuse a running lab,
doctor can tell "port in use by the lab" from "port in use by something else", and upgrade can restart
the lab with the command line it was started with.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ailab import __version__
from ailab.stack.native.supervisor import pid_alive


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
        info = RunInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None
    if alive_only and not pid_alive(info.pid):
        return None
    return info


def last_version(data_dir: Path) -> str | None:
    """The ailab version that last served this data dir, if any did."""
    try:
        return (data_dir / "run" / "last_version").read_text().strip() or None
    except OSError:
        return None
