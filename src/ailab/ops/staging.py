"""The staging folder a backup is assembled in: each member is written here first, hashed, then archived.

Files are copied whole, SQLite databases through SQLite's online backup API (a consistent snapshot even
while the lab writes to them), and command output is streamed straight into its member file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ailab.ops.archive import Member, file_sha256, safe_member_path

SQLITE_MAGIC = b"SQLite format 3\x00"
# Files that only coordinate live processes; never archived, never restored.
LOCK_NAMES = frozenset({"lock", ".lock"})


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def sqlite_snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included), in one backup step."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    if not src.is_file():
        raise FileNotFoundError(src)
    # Read-write open: a read-only one cannot join a WAL database whose -shm it may not create.
    source = sqlite3.connect(src, timeout=60)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # pages=-1: one step, so concurrent writers cannot make it restart
        finally:
            target.close()
    finally:
        source.close()


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Staging:
    def __init__(self, root: Path, progress: Callable[[str], None]) -> None:
        self.root = root
        self.progress = progress
        self.members: list[Member] = []
        self.notes: list[str] = []

    def path(self, arc: str) -> Path:
        dst = self.root / safe_member_path(arc)
        dst.parent.mkdir(parents=True, exist_ok=True)
        return dst

    def commit(self, arc: str, kind: str) -> Member:
        """Record a member whose file is now complete in the staging folder."""
        dst = self.root / arc
        member = Member(arc, file_sha256(dst), dst.stat().st_size, kind)
        self.members.append(member)
        self.progress(f"  {arc} ({human(member.size)})")
        return member

    def add_file(self, arc: str, src: Path, kind: str) -> Member:
        shutil.copyfile(src, self.path(arc))
        return self.commit(arc, kind)

    def add_bytes(self, arc: str, data: bytes, kind: str) -> Member:
        self.path(arc).write_bytes(data)
        return self.commit(arc, kind)

    def add_sqlite(self, arc: str, src: Path, kind: str) -> Member:
        sqlite_snapshot(src, self.path(arc))
        return self.commit(arc, kind)

    def add_tree(self, prefix: str, src: Path, kind: str) -> int:
        """Every file under `src` (SQLite files by snapshot, lock files skipped); returns the count."""
        n = 0
        for path in walk_files(src):
            rel = path.relative_to(src).as_posix()
            arc = f"{prefix}/{rel}"
            if is_sqlite(path):
                self.add_sqlite(arc, path, kind)
            else:
                self.add_file(arc, path, kind)
            n += 1
        return n

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress(f"  note: {text}")


def walk_files(root: Path, skip_dirs: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Regular files under root in a stable order; symlinks and lock files are left out."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name in LOCK_NAMES or path.is_symlink() or not path.is_file():
                continue
            yield path


@contextmanager
def staging_dir(path: Path) -> Iterator[Path]:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
