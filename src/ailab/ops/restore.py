"""`ailab restore FILE`: check everything first, then replace the stopped lab's state with the archive's.

Order: refuse a running lab (its run file) → verify the whole archive (every checksum, format, schema) →
check the target can take it (same database kind, a Qdrant server for server snapshots, no other secret
key in the way) → extract into a staging folder next to the data dir, hashing again → load the external
parts (PostgreSQL by `pg_restore --single-transaction`, Qdrant snapshots) → swap the staged units in →
write the secret key if the archive has it → pipe component volumes back (Docker runtime). Anything that
fails before the swap leaves the target as it was; what the swap replaced is kept beside the data dir.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ailab.config.loader import LoadedConfig
from ailab.ops.archive import Manifest, Member, check_schema, read_archive
from ailab.ops.placement import Placement, RestoreError, keep_previous, plan, swap
from ailab.ops.staging import human, staging_dir
from ailab.ops.stores import StoreLocations

__all__ = ["RestoreError", "RestoreReport", "restore_archive"]

KEY_MEMBER = "key/secret.key"


@dataclass
class RestoreReport:
    archive: Path
    manifest: Manifest
    dry_run: bool
    actions: list[str] = field(default_factory=list)  # what was (or, dry run, would be) restored
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts not restored (components), with why
    previous: Path | None = None  # where the replaced state was moved
    seconds: float = 0.0


def restore_archive(
    path: Path, loaded: LoadedConfig, *, dry_run: bool = False, progress: Callable[[str], None] | None = None
) -> RestoreReport:
    say = progress or (lambda _msg: None)
    t0 = time.monotonic()
    path = Path(path)
    refuse_running(loaded.data_dir)
    say(f"verifying {path}")
    manifest, key_text = _verify(path)
    data = Path(os.path.abspath(loaded.data_dir))
    pl = plan(
        manifest,
        loaded,
        data.parent / f".{data.name}.restore-{os.getpid()}",
        _sqlite_target(manifest, loaded),
    )
    _check_qdrant(manifest, loaded)
    key = _key_preflight(key_text, loaded)
    report = RestoreReport(path, manifest, dry_run, _describe(manifest, pl, loaded), list(manifest.notes))
    if dry_run:
        return report
    data.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(pl.staging):
        _extract(path, pl, loaded, say)
        _apply_external(manifest, loaded, pl.staging, say, report.notes)
        say("putting the restored data in place")
        report.previous = keep_previous(pl, swap(pl))
        if key is not None:
            _write_key(*key)
        _components(loaded, pl.staging, report, say)
    if key_text is None and loaded.config.secrets.backend == "local":
        report.notes.append(
            "the archive holds no secret key: secrets stay encrypted with the source lab's key "
            "(set AILAB_SECRET_KEY or secrets.key_file to it)"
        )
    report.seconds = time.monotonic() - t0
    return report


def refuse_running(data_dir: Path) -> None:
    from ailab.ops.runfile import read_runfile
    from ailab.stack.native.plan import state_file
    from ailab.stack.native.supervisor import pid_alive, read_state

    info = read_runfile(data_dir)
    if info is not None:
        raise RestoreError(
            f"a lab is running on {data_dir} (pid {info.pid}, {info.url}): stop it first, then restore"
        )
    pid = read_state(state_file(data_dir)).get("supervisor_pid")
    if isinstance(pid, int) and pid_alive(pid):
        raise RestoreError(f"the native stack is running on {data_dir} (pid {pid}): `ailab down` first")


def _sqlite_target(manifest: Manifest, loaded: LoadedConfig) -> Path | None:
    from ailab.ops.database import is_sqlite, lab_database_url, sqlite_path

    url = lab_database_url(loaded)
    if manifest.database == "postgresql" and is_sqlite(url):
        raise RestoreError(
            "the archive holds a PostgreSQL database but the target lab uses SQLite: set "
            "general_settings.database_url to a PostgreSQL database to restore into"
        )
    if manifest.database == "sqlite" and not is_sqlite(url) and manifest.member("db/ailab.db"):
        raise RestoreError(
            "the archive holds a SQLite database but the target lab uses PostgreSQL "
            "(general_settings.database_url): restore into a lab on SQLite"
        )
    return sqlite_path(url) if is_sqlite(url) else None


def _check_qdrant(manifest: Manifest, loaded: LoadedConfig) -> None:
    if manifest.by_kind("qdrant-snapshot") and not StoreLocations.of(loaded).qdrant_url:
        raise RestoreError(
            "the archive holds Qdrant server snapshots but the target lab has no Qdrant server: "
            "set knowledge.stores.qdrant.url"
        )


def _describe(manifest: Manifest, pl: Placement, loaded: LoadedConfig) -> list[str]:
    kinds = Counter(m.kind for m in manifest.members)
    sizes: Counter[str] = Counter()
    for m in manifest.members:
        sizes[m.kind] += m.size
    lines = [f"archive from ailab {manifest.lab_version}, {manifest.created}, database {manifest.database}"]
    lines += [f"{kind}: {n} file(s), {human(sizes[kind])}" for kind, n in sorted(kinds.items())]
    lines.append(f"into {pl.data_dir}" + (f" and {pl.sqlite_target}" if pl.sqlite_target else ""))
    existing = [u for u in pl.units if u.exists()]
    if existing:
        lines.append(f"replacing {len(existing)} existing item(s): {', '.join(str(u) for u in existing)}")
    if manifest.database == "postgresql":
        lines.append("PostgreSQL: pg_restore --clean into general_settings.database_url")
    return lines


def _extract(path: Path, pl: Placement, loaded: LoadedConfig, say: Callable[[str], None]) -> None:
    loc = StoreLocations.of(loaded)

    def sink(m: Member) -> IO[bytes]:
        dst = pl.staged_path(m, loc)
        dst.parent.mkdir(parents=True, exist_ok=True)
        say(f"  {m.path} ({human(m.size)})")
        # Owner-only, like the archive itself (it holds the master key, maybe the secret key).
        return os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")

    say("extracting into a staging folder")
    read_archive(path, sink, check=lambda m: check_schema(m, str(path)))


class _Kept(io.BytesIO):
    def close(self) -> None:  # read_archive closes its sinks; these bytes are read afterwards
        return None


def _verify(path: Path) -> tuple[Manifest, str | None]:
    """verify_archive, also keeping the secret key member (to check it against the target up front)."""
    kept = _Kept()
    manifest = read_archive(
        path, lambda m: kept if m.path == KEY_MEMBER else None, check=lambda m: check_schema(m, str(path))
    )
    return manifest, kept.getvalue().decode() if manifest.member(KEY_MEMBER) else None


def _key_preflight(key_text: str | None, loaded: LoadedConfig) -> tuple[Path, bytes] | None:
    """The (key file, key) to write; refuses when another key is already in the way."""
    from ailab.secrets.keyfile import ENV_KEY, decode_key, key_path, load_key

    if key_text is None:
        return None
    key = decode_key(key_text, "the archive's secret key")
    env = os.environ.get(ENV_KEY)
    if env:
        if decode_key(env, ENV_KEY) != key:
            raise RestoreError(
                f"{ENV_KEY} holds another key than the archive's: the restored secrets could not be "
                "decrypted; unset it or set it to the archive's key"
            )
        return None
    target = key_path(loaded.config.secrets.key_file)
    if target.exists():
        if load_key(loaded.config.secrets.key_file, None, create=False) != key:
            raise RestoreError(
                f"{target} holds another secret key than the archive's: move it away (or point "
                "secrets.key_file elsewhere) so the restored secrets can be decrypted"
            )
        return None
    return target, key


def _write_key(path: Path, key: bytes) -> None:
    from ailab.secrets.keyfile import encode_key

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(encode_key(key) + "\n")


def _apply_external(
    manifest: Manifest, loaded: LoadedConfig, staging: Path, say: Callable[[str], None], notes: list[str]
) -> None:
    """Load the parts that live outside the data dir; a failure here stops before the data dir changes."""
    from ailab.ops.database import DatabaseError
    from ailab.ops.qdrant_snapshots import QdrantSnapshotError

    done = ""
    try:
        if manifest.database == "postgresql" and manifest.member("db/ailab.pgdump"):
            _load_postgres(loaded, staging / "apply" / "db" / "ailab.pgdump", say, notes)
            done = " (the PostgreSQL database was restored already)"
        snaps = [
            (Path(m.path).name.removesuffix(".snapshot"), staging / "apply" / m.path)
            for m in manifest.by_kind("qdrant-snapshot")
        ]
        if snaps:
            from ailab.ops.stores import restore_qdrant_snapshots

            say(f"recovering {len(snaps)} Qdrant collection(s) from their snapshots")
            restore_qdrant_snapshots(loaded, snaps)
    except (DatabaseError, QdrantSnapshotError) as exc:
        raise RestoreError(f"restore stopped before changing the data dir{done}: {exc}") from None


def _load_postgres(loaded: LoadedConfig, dump: Path, say: Callable[[str], None], notes: list[str]) -> None:
    from ailab.ops.database import lab_database_url, pg_restore, tables_left_behind

    say("loading the PostgreSQL dump (pg_restore, one transaction)")
    url = lab_database_url(loaded)
    extra = tables_left_behind(url, dump)
    pg_restore(url, dump)
    if extra:
        notes.append(
            f"PostgreSQL tables not in the archive were left as they were: {', '.join(extra)} "
            "(from a newer ailab? drop them before upgrading again)"
        )


def _components(
    loaded: LoadedConfig, staging: Path, report: RestoreReport, say: Callable[[str], None]
) -> None:
    from ailab.ops.components import ComponentError, restore_components

    base = staging / "apply" / "components"
    staged: dict[str, dict[str, Path]] = {}
    for m in report.manifest.by_kind("component-volumes", "component-dump"):
        _, name, fname = m.path.split("/", 2)
        staged.setdefault(name, {})[fname] = base / name / fname
    if not staged:
        return
    say(f"restoring component data: {', '.join(sorted(staged))}")
    try:
        done, skipped = restore_components(loaded.data_dir, staged)
    except ComponentError as exc:
        report.problems.append(f"components: {exc}")
        return
    report.actions += [f"component {name}: volumes restored" for name in done]
    report.problems += skipped
