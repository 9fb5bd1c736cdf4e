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
from typing import IO, Any

from ailab.config import LoadedConfig
from ailab.ops.archive import Manifest, Member, check_schema, read_archive
from ailab.ops.placement import APPLIED, Placement, RestoreError, keep_previous, plan, swap
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
    manifest, key_text, sealed = _verify(path)
    data = Path(os.path.abspath(loaded.data_dir))
    pl = plan(
        manifest,
        loaded,
        data.parent / f".{data.name}.restore-{os.getpid()}",
        _sqlite_target(manifest, loaded),
    )
    _check_qdrant(manifest, loaded)
    key = _key_preflight(key_text, loaded)
    plain, unopened = _open_sealed(pl, manifest, sealed, key_text, loaded)
    report = RestoreReport(path, manifest, dry_run, _describe(manifest, pl, loaded), list(manifest.notes))
    report.problems += unopened
    if dry_run:
        return report
    data.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(pl.staging):
        _extract(path, pl, loaded, say, plain)
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
    from ailab.stack import pid_alive, read_state, state_file

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


def _extract(
    path: Path, pl: Placement, loaded: LoadedConfig, say: Callable[[str], None], plain: dict[str, bytes]
) -> None:
    loc = StoreLocations.of(loaded)

    def sink(m: Member) -> IO[bytes] | None:
        if m.path in manifest_sealed and m.path not in plain:
            return None  # sealed with a key this machine lacks: the target keeps its own (see problems)
        dst = pl.staged_path(m, loc)
        dst.parent.mkdir(parents=True, exist_ok=True)
        say(f"  {m.path} ({human(m.size)})")
        # Owner-only, like the archive itself (it holds the master key, maybe the secret key).
        out = os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        if m.path in plain:  # sealed: the decrypted bytes (checked up front) go in place of the ciphertext
            out.write(plain[m.path])
            return _Discard(out)
        return out

    manifest_sealed: set[str] = set()

    def check(m: Manifest) -> None:
        check_schema(m, str(path))
        manifest_sealed.update(m.sealed)

    say("extracting into a staging folder")
    read_archive(path, sink, check=check)


class _Kept(io.BytesIO):
    def close(self) -> None:  # read_archive closes its sinks; these bytes are read afterwards
        return None


class _Discard(io.BytesIO):
    """Takes a sealed member's ciphertext (hashed by read_archive) and drops it; closes the real file."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__()
        self.out = out

    def write(self, b: Any) -> int:
        return len(b)

    def close(self) -> None:
        self.out.close()
        super().close()


def _verify(path: Path) -> tuple[Manifest, str | None, dict[str, bytes]]:
    """verify_archive, also keeping the secret key member (to check it against the target up front) and
    the sealed members (small: config and key files), to decrypt them before anything is touched."""
    kept: dict[str, _Kept] = {}

    def keep(m: Member) -> IO[bytes] | None:
        if m.path == KEY_MEMBER or m.path in sealed_paths:
            return kept.setdefault(m.path, _Kept())
        return None

    sealed_paths: set[str] = set()

    def check(m: Manifest) -> None:
        check_schema(m, str(path))
        sealed_paths.update(m.sealed)

    manifest = read_archive(path, keep, check=check)
    key = kept.pop(KEY_MEMBER).getvalue().decode() if KEY_MEMBER in kept else None
    return manifest, key, {p: k.getvalue() for p, k in kept.items()}


def _open_sealed(
    pl: Placement, manifest: Manifest, sealed: dict[str, bytes], key_text: str | None, loaded: LoadedConfig
) -> tuple[dict[str, bytes], list[str]]:
    """The sealed members decrypted; when no key at hand opens them, none, and the problem: the target then
    keeps its own versions of what they would replace (their units are left out of the swap)."""
    try:
        return _unseal(sealed, key_text, loaded), []
    except RestoreError as exc:
        reason = str(exc)
    loc = StoreLocations.of(loaded)
    held = {pl.unit_of(pl.target_of(m.path, loc)) for m in manifest.members if m.path in sealed}
    others = {
        pl.unit_of(pl.target_of(m.path, loc))
        for m in manifest.members
        if m.path not in sealed and not m.path.startswith(APPLIED)
    }
    pl.units = [u for i, u in enumerate(pl.units) if i not in held - others]
    names = ", ".join(sorted(sealed)[:4]) + (" …" if len(sealed) > 4 else "")
    return {}, [f"not restored ({names}): {reason}; the target keeps its own"]


def _unseal(sealed: dict[str, bytes], key_text: str | None, loaded: LoadedConfig) -> dict[str, bytes]:
    """The sealed members decrypted, with the archive's key or else the target's; RestoreError if neither
    opens them."""
    from ailab.ops.sealing import SealError, member_key, unseal
    from ailab.secrets import SecretError, decode_key, load_key

    if not sealed:
        return {}
    try:
        secret = (
            decode_key(key_text, "the archive's secret key")
            if key_text is not None
            else load_key(loaded.config.secrets.key_file, None, create=False)
        )
    except SecretError as exc:
        raise RestoreError(str(exc)) from None
    if secret is None:
        raise RestoreError(
            f"{len(sealed)} member(s) ({', '.join(sorted(sealed)[:3])}) are encrypted with the source lab's "
            "secret key and this machine has none: set AILAB_SECRET_KEY or secrets.key_file to it"
        )
    key = member_key(secret)
    try:
        return {arc: unseal(key, arc, blob) for arc, blob in sealed.items()}
    except SealError as exc:
        raise RestoreError(str(exc)) from None


def _key_preflight(key_text: str | None, loaded: LoadedConfig) -> tuple[Path, bytes] | None:
    """The (key file, key) to write; refuses when another key is already in the way."""
    from ailab.secrets import ENV_KEY, decode_key, key_path, load_key

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
    from ailab.secrets import encode_key

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
