"""`ailab backup`: one archive holding everything the lab keeps, taken while it serves.

What goes in (docs/operations.md): the database (SQLite by online backup, PostgreSQL by pg_dump), the
master key file and ledger spill files, knowledge (catalog, every vector store, uploaded originals), the
stack's install state and rendered projects, the config file, the secret store as stored (encrypted) and
its key only on request, and in the Docker runtime each running component's volumes. Every attempt,
failed or not, is recorded in `<backup dir>/last.json` (read by `ailab doctor`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ailab.config import LoadedConfig
from ailab.ledger import JOURNAL_DIR, SEGMENT_GLOB, journal_dir
from ailab.ops.archive import Manifest, write_archive
from ailab.ops.staging import Staging, human, staging_dir, walk_files

log = logging.getLogger("ailab.backup")

PATTERN = "ailab-backup-*.tar.gz"
LAST = "last.json"
# Left out of `stack/`: process state and logs of this machine's native supervisor.
STACK_SKIP = frozenset({"logs"})
STACK_SKIP_FILES = frozenset({"native.json"})


class BackupError(RuntimeError):
    """The backup could not be taken; the message says why."""


@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    seconds: float
    pruned: list[Path]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def backup_dir(loaded: LoadedConfig) -> Path:
    configured = loaded.config.backup.dir
    return Path(configured).expanduser() if configured else loaded.data_dir / "backups"


def read_last(loaded: LoadedConfig) -> dict[str, Any] | None:
    """The outcome of the latest backup attempt, or None when none was ever tried."""
    try:
        data = json.loads((backup_dir(loaded) / LAST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def default_name(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"ailab-backup-{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z.tar.gz"


def create_backup(
    loaded: LoadedConfig,
    *,
    out: Path | None = None,
    keep: int | None = None,
    include_key: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BackupResult:
    """Write one archive (default: `<backup dir>/ailab-backup-<UTC time>.tar.gz`), then prune."""
    say = progress or (lambda _msg: None)
    t0 = time.monotonic()
    target = Path(out) if out is not None else backup_dir(loaded) / default_name()
    try:
        manifest = _create(loaded, target, include_key or loaded.config.backup.include_key, say)
        pruned = prune(target.parent, loaded.config.backup.keep if keep is None else keep)
    except Exception as exc:
        _write_last(loaded, ok=False, path=None, error=str(exc) or type(exc).__name__, t0=t0)
        raise
    _write_last(loaded, ok=True, path=target, error=None, t0=t0)
    for p in pruned:
        say(f"pruned {p.name}")
    return BackupResult(target, manifest, time.monotonic() - t0, pruned)


def _create(loaded: LoadedConfig, out: Path, include_key: bool, say: Callable[[str], None]) -> Manifest:
    from ailab.ops.components import backup_components
    from ailab.ops.stores import backup_knowledge

    if not loaded.data_dir.is_dir():
        raise BackupError(f"no lab data at {loaded.data_dir} (nothing to back up)")
    out.parent.mkdir(parents=True, exist_ok=True)
    say(f"backing up {loaded.data_dir} to {out}")
    with staging_dir(out.parent / f".{out.name}.staging") as root:
        st = Staging(root, say)
        sealer = _Sealer(loaded, st)
        database, migrations = _database(loaded, st)
        _data_files(loaded, st, sealer)
        backup_knowledge(loaded, st)
        _config(loaded, sealer)
        key_included = _secrets(loaded, st, include_key)
        backup_components(loaded.data_dir, st)
        manifest = Manifest(
            migrations=migrations,
            database=database,
            members=st.members,
            key_included=key_included,
            notes=st.notes,
            sealed=sealer.sealed,
        )
        write_archive(out, root, manifest, say)
    total = sum(m.size for m in manifest.members)
    say(f"done: {len(manifest.members)} members, {human(total)} before compression")
    return manifest


def _database(loaded: LoadedConfig, st: Staging) -> tuple[str, list[str]]:
    from ailab.ops.database import (
        is_sqlite,
        lab_database_url,
        pg_dump,
        postgres_migrations,
        sqlite_migrations,
        sqlite_path,
    )

    url = lab_database_url(loaded)
    if is_sqlite(url):
        path = sqlite_path(url)
        if not path.is_file():
            st.note("the lab database does not exist yet (the lab never ran)")
            return "sqlite", []
        st.progress("database (SQLite online backup)")
        st.add_sqlite("db/ailab.db", path, "sqlite")
        return "sqlite", sqlite_migrations(st.root / "db" / "ailab.db")
    st.progress("database (pg_dump)")
    migrations = postgres_migrations(url)
    pg_dump(url, st.path("db/ailab.pgdump"))
    st.commit("db/ailab.pgdump", "pg_dump")
    return "postgresql", migrations


class _Sealer:
    """Adds members that carry credentials encrypted with the lab's secret key (ailab.ops.sealing)."""

    def __init__(self, loaded: LoadedConfig, st: Staging) -> None:
        self.loaded, self.st = loaded, st
        self.sealed: list[str] = []
        self._key: bytes | None = None

    def add_file(self, arc: str, src: Path, kind: str) -> None:
        from ailab.ops.sealing import seal

        self.st.add_bytes(arc, seal(self.key(), arc, src.read_bytes()), kind)
        self.sealed.append(arc)

    def key(self) -> bytes:
        if self._key is None:
            from ailab.ops.sealing import member_key
            from ailab.secrets import SecretError, load_key

            try:
                secret = load_key(self.loaded.config.secrets.key_file, self.loaded.data_dir, create=True)
            except SecretError as exc:
                raise BackupError(f"cannot seal the config and keys: {exc}") from None
            assert secret is not None  # create=True
            self._key = member_key(secret)
            self.st.note(
                "the config, master key and stack files are encrypted with the lab's secret key: "
                "keep a copy of that key apart, or restore cannot open them"
            )
        return self._key


def _data_files(loaded: LoadedConfig, st: Staging, sealer: _Sealer) -> None:
    data = loaded.data_dir
    if (data / "master_key").is_file():
        sealer.add_file("data/master_key", data / "master_key", "file")
    for spill in sorted(data.glob("ledger-spill-*.jsonl")):
        st.add_file(f"data/{spill.name}", spill, "file")
    # Journal segments hold usage rows that may not have reached the database yet (a lab killed before its
    # next start replayed them, or rows in flight now): the restored lab replays them, skipping known ids.
    for segment in sorted(journal_dir(data).glob(SEGMENT_GLOB)):
        st.add_file(f"data/{JOURNAL_DIR}/{segment.name}", segment, "file")
    stack = data / "stack"
    for path in walk_files(stack, STACK_SKIP):
        if path.parent == stack and path.name in STACK_SKIP_FILES:
            continue
        sealer.add_file(f"data/stack/{path.relative_to(stack).as_posix()}", path, "stack")


def _config(loaded: LoadedConfig, sealer: _Sealer) -> None:
    if loaded.path is not None and loaded.path.is_file():
        sealer.add_file(f"config/{loaded.path.name}", loaded.path, "config")


def _secrets(loaded: LoadedConfig, st: Staging, include_key: bool) -> bool:
    """The secret store is in the database (still encrypted); its key goes in only when asked."""
    from ailab.secrets import encode_key, key_path, load_key

    cfg = loaded.config.secrets
    if cfg.backend == "vault":
        st.note(
            f"secrets are in Vault ({cfg.vault_url or os.environ.get('VAULT_ADDR', '$VAULT_ADDR')}): "
            "back them up with Vault's own tools; this archive holds only the config that points there"
        )
        return False
    if not include_key:
        from_env = bool(os.environ.get("AILAB_SECRET_KEY"))
        if not from_env and not key_path(cfg.key_file).is_file():
            st.note("no secret key exists yet (no secret was ever stored)")
            return False
        where = "AILAB_SECRET_KEY" if from_env else str(key_path(cfg.key_file))
        st.note(f"the secret store's key is not in this archive: keep a copy of it ({where}) apart")
        return False
    key = load_key(cfg.key_file, loaded.data_dir, create=False)
    if key is None:
        st.note("no secret key exists yet (no secret was ever stored): none included")
        return False
    st.add_bytes("key/secret.key", (encode_key(key) + "\n").encode(), "secret-key")
    return True


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives named ailab-backup-*.tar.gz (0 keeps all)."""
    if keep <= 0:
        return []
    archives = sorted(directory.glob(PATTERN), key=lambda p: p.name)
    doomed = archives[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _write_last(loaded: LoadedConfig, *, ok: bool, path: Path | None, error: str | None, t0: float) -> None:
    record = {
        "ok": ok,
        "path": str(path) if path is not None else None,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "error": error,
        "seconds": round(time.monotonic() - t0, 3),
    }
    directory = backup_dir(loaded)
    if not loaded.data_dir.exists() and directory.is_relative_to(loaded.data_dir):
        return  # no lab there: do not create its data dir just to say so
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{LAST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(directory / LAST)
    except OSError as exc:
        log.warning("could not record the backup outcome in %s: %s", directory / LAST, exc)
