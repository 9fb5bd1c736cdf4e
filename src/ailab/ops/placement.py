"""Where each archive member goes in the target lab, and the swap that puts it there.

The target is cut into *units* (a file or folder that is replaced whole: `knowledge/`, `stack/`, the
SQLite file and its -wal/-shm, the master key, an external vector-store folder …). Restore extracts every
member into `<staging>/new/<unit>`, then renames each unit's current state to `<staging>/old/<unit>` and
the new one into place; if any rename fails, the ones done are undone, so the target is never half
replaced. Members that are applied rather than placed (a PostgreSQL dump, Qdrant snapshots, component
volumes, the secret key) land in `<staging>/apply/`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ailab.config import LoadedConfig
from ailab.ops.archive import ArchiveError, Manifest, Member, safe_member_path
from ailab.ops.stores import MILVUS_LITE, QDRANT_LOCAL, StoreLocations

# Always replaced, so the restored lab holds exactly what the archive holds.
MANAGED = ("master_key", "knowledge", "stack", "restored-config", "audit.checkpoint")
APPLIED = ("db/ailab.pgdump", "qdrant-snapshots/", "components/", "key/")


class RestoreError(ArchiveError):
    """Restore refused or failed; the message says why. (An ArchiveError, so one `except` catches both.)"""


@dataclass
class Placement:
    data_dir: Path
    staging: Path
    units: list[Path] = field(default_factory=list)
    sqlite_target: Path | None = None

    def unit_of(self, target: Path) -> int:
        target = Path(os.path.abspath(target))
        for i, unit in enumerate(self.units):
            if target == unit or target.is_relative_to(unit):
                return i
        raise RestoreError(f"internal: {target} belongs to no restore unit")

    def new(self, i: int) -> Path:
        return self.staging / "new" / str(i)

    def old(self, i: int) -> Path:
        return self.staging / "old" / str(i)

    def staged_path(self, m: Member, locations: StoreLocations) -> Path:
        """Where the member is extracted to (inside the staging folder)."""
        p = m.path
        if p.startswith(APPLIED) or p in APPLIED:
            return self.staging / "apply" / safe_member_path(p)
        target = Path(os.path.abspath(self.target_of(p, locations)))
        i = self.unit_of(target)
        rel = target.relative_to(self.units[i])
        return self.new(i) / rel if rel.parts else self.new(i)

    def target_of(self, arc: str, loc: StoreLocations) -> Path:
        parts = safe_member_path(arc).parts
        if arc == "db/ailab.db":
            if self.sqlite_target is None:
                raise RestoreError("the archive holds a SQLite database but the target lab uses PostgreSQL")
            return self.sqlite_target
        if parts[0] == "data" and len(parts) > 1:
            return self.data_dir.joinpath(*parts[1:])
        if parts[0] == "config" and len(parts) == 2:
            return self.data_dir / "restored-config" / parts[1]
        for prefix, base in ((QDRANT_LOCAL, loc.qdrant_local), (MILVUS_LITE, loc.milvus_lite)):
            if arc == prefix or arc.startswith(prefix + "/"):
                if base is None:
                    raise RestoreError(_store_mismatch(prefix))
                return base.joinpath(*PurePosixPath(arc).parts[len(PurePosixPath(prefix).parts) :])
        raise RestoreError(f"member {arc}: not a kind of data this ailab knows how to restore")


def _store_mismatch(prefix: str) -> str:
    if prefix == QDRANT_LOCAL:
        return (
            "the archive holds a local-mode Qdrant store but the target lab points "
            "knowledge.stores.qdrant at a server (url): remove the url or restore elsewhere"
        )
    return (
        "the archive holds a Milvus Lite store but the target lab points knowledge.stores.milvus at a server"
    )


def plan(manifest: Manifest, loaded: LoadedConfig, staging: Path, sqlite_target: Path | None) -> Placement:
    """Units for this archive and target; raises RestoreError for members the target cannot take."""
    data = Path(os.path.abspath(loaded.data_dir))
    pl = Placement(data, staging, sqlite_target=sqlite_target)
    loc = StoreLocations.of(loaded)
    candidates: list[Path] = [data / name for name in MANAGED]
    candidates += sorted(data.glob("ledger-spill-*.jsonl"))
    if sqlite_target is not None:
        candidates += [sqlite_target, Path(f"{sqlite_target}-wal"), Path(f"{sqlite_target}-shm")]
    for p, base in ((QDRANT_LOCAL, loc.qdrant_local), (MILVUS_LITE, loc.milvus_lite)):
        if base is not None and (
            manifest.member(p) or any(m.path.startswith(p + "/") for m in manifest.members)
        ):
            candidates.append(base)
    for m in manifest.members:
        parts = safe_member_path(m.path).parts
        if parts[0] == "data" and len(parts) > 1:
            candidates.append(data / parts[1])
        elif not m.path.startswith(APPLIED):
            pl.target_of(m.path, loc)  # refuses what the target cannot take, before anything is touched
    pl.units = _outermost(candidates)
    return pl


def _outermost(paths: list[Path]) -> list[Path]:
    """Distinct absolute paths, leaving out any inside another (it moves with its parent)."""
    uniq = sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: len(p.parts))
    out: list[Path] = []
    for p in uniq:
        if not any(p == q or p.is_relative_to(q) for q in out):
            out.append(p)
    return out


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))  # another filesystem


def swap(pl: Placement) -> list[Path]:
    """Put every staged unit in place; all or none. Returns the units whose old state was moved aside."""
    done: list[tuple[int, bool, bool]] = []  # (unit, had old, placed new)
    try:
        for i, unit in enumerate(pl.units):
            had_old = unit.exists() or unit.is_symlink()
            if had_old:
                _move(unit, pl.old(i))
            done.append((i, had_old, False))
            if pl.new(i).exists():
                _move(pl.new(i), unit)
                done[-1] = (i, had_old, True)
    except OSError as exc:
        _undo(pl, done)
        raise RestoreError(f"could not put the restored data in place ({exc}); nothing was changed") from None
    return [pl.units[i] for i, had_old, _ in done if had_old]


def _undo(pl: Placement, done: list[tuple[int, bool, bool]]) -> None:
    for i, had_old, placed in reversed(done):
        unit = pl.units[i]
        if placed:
            _move(unit, pl.new(i))
        if had_old:
            _move(pl.old(i), unit)


def keep_previous(pl: Placement, moved: list[Path]) -> Path | None:
    """Move what was replaced next to the data dir (`<data>.pre-restore-<time>`), with an index."""
    if not moved:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = pl.data_dir.parent / f"{pl.data_dir.name}.pre-restore-{stamp}"
    _move(pl.staging / "old", dest)
    index = {str(i): str(u) for i, u in enumerate(pl.units) if u in moved}
    (dest / "index.json").write_text(json.dumps(index, indent=2))
    return dest
