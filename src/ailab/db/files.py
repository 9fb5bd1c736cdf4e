"""The data dir is private: the directory 0700 and what the lab writes in it 0600, whatever the umask.

The `ailab` command narrows its process umask to 077 before it does anything (run and lock files, journals,
uploads, worker processes inherit it); the library does not, since a umask is process-wide and would leak
into a host application. Whoever opens the lab (CLI or an embedding app) gets the data dir made 0700 and the
SQLite file created 0600 before SQLite opens it (SQLite gives -wal/-shm the database file's own mode), and
files left wider by an older version or a copy narrowed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("ailab")

PRIVATE = 0o077  # the group and other bits the lab never leaves set


def private_umask() -> None:
    """Add 077 to the process umask (new files owner-only); inherited by worker processes."""
    current = os.umask(PRIVATE)
    os.umask(current | PRIVATE)


def secure_data_dir(data_dir: Path) -> None:
    """Create the data dir 0700 (or narrow it) and narrow what is in it."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _narrow(data_dir, 0o700)
    for root, dirs, files in os.walk(data_dir):
        base = Path(root)
        for name in dirs:
            _narrow(base / name, 0o700)
        for name in files:
            _narrow(base / name, 0o600)


def private_sqlite(path: Path) -> None:
    """The SQLite file exists 0600 before SQLite opens it (its -wal and -shm then get the same mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        log.warning("cannot create %s: %s", path, exc.strerror)
        return
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        _narrow(p, 0o600)


def _narrow(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & PRIVATE:
            return
        path.chmod(stat.S_IMODE(st.st_mode) & mode)
    except FileNotFoundError:
        return
    except OSError as exc:  # not ours (e.g. a bind-mounted file): say so, keep going
        log.warning("cannot make %s private: %s", path, exc.strerror)
