"""`ailab upgrade`: backup → apply the pending migrations as one transaction → health gate → roll back.

Run it after installing the new version (`pip install -U local-ai-lab`), with the lab serving or stopped:
- a migration that fails rolls the whole group back (one transaction; SQLite runs DDL inside it too), so the
  schema is unchanged and a running lab was never stopped: it keeps serving the old version;
- once the migrations are in, a running lab is restarted with its own command line and must pass the gate
  (ready, database reachable, an authenticated /v1/models); a stopped lab is gated through a candidate
  process on a spare loopback port;
- a failed gate restores the backup taken at the start and says how to go back to the previous version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ailab import __version__
from ailab.config import LoadedConfig
from ailab.db import MigrationError, applied_migrations, make_engine, migrate
from ailab.ops.labctl import (
    GateResult,
    candidate_argv,
    free_port,
    health_gate,
    start_lab,
    stop_lab,
    stop_process,
)
from ailab.ops.runfile import RunInfo, last_version, read_runfile

Progress = Callable[[str], None]


class UpgradeError(RuntimeError):
    """The upgrade was refused before anything changed."""


@dataclass
class UpgradeReport:
    version: str
    previous_version: str | None
    pending: list[str]
    outcome: str = "planned"  # planned | up-to-date | upgraded | rolled back
    backup: str | None = None
    applied: list[str] = field(default_factory=list)
    gate: str | None = None
    detail: str = ""
    serving: str | None = None  # the URL of the lab serving when the command ended

    @property
    def ok(self) -> bool:
        return self.outcome in ("planned", "up-to-date", "upgraded")

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def plan(loaded: LoadedConfig) -> UpgradeReport:
    from ailab.db import all_migrations, database_url

    engine = make_engine(database_url(loaded))
    try:
        applied = applied_migrations(engine)
    finally:
        engine.dispose()
    known = {m.name for m in all_migrations()}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise UpgradeError(
            f"the database was migrated by a newer ailab (migrations {', '.join(unknown)} are unknown to "
            f"ailab {__version__}); install that version, or restore a backup taken before it"
        )
    pending = [m.name for m in all_migrations() if m.name not in set(applied)]
    return UpgradeReport(__version__, last_version(loaded.data_dir), pending)


def upgrade(
    loaded: LoadedConfig, *, dry_run: bool = False, gate_timeout: float = 60.0, progress: Progress = print
) -> UpgradeReport:
    report = plan(loaded)
    running = read_runfile(loaded.data_dir)
    report.serving = running.url if running else None
    if dry_run:
        return report
    from ailab.ops.backup import create_backup

    progress("backup: taking a backup before anything changes")
    report.backup = str(create_backup(loaded, progress=progress).path)
    if not _migrate(loaded, report, progress):
        return report
    gate = _gate(loaded, running, gate_timeout, progress)
    report.gate = gate.detail
    if gate.ok:
        report.outcome = "upgraded" if report.applied else "up-to-date"
        return report
    _roll_back(loaded, report, running, progress)
    return report


def _migrate(loaded: LoadedConfig, report: UpgradeReport, progress: Progress) -> bool:
    from ailab.db import all_migrations, database_url

    if report.pending:
        progress(f"migrate: applying {', '.join(report.pending)} in one transaction")
    engine = make_engine(database_url(loaded), transactional_ddl=True)
    try:
        report.applied = migrate(engine, all_migrations(), atomic=True)
    except MigrationError as exc:
        report.outcome = "rolled back"
        served = f"; the lab at {report.serving} keeps serving the old version" if report.serving else ""
        report.detail = f"{exc}; the transaction was rolled back, so the schema is unchanged{served}"
        return False
    finally:
        engine.dispose()
    return True


def _gate(loaded: LoadedConfig, running: RunInfo | None, timeout: float, progress: Progress) -> GateResult:
    from ailab.access import ensure_master_key

    key, _ = ensure_master_key(loaded.config.general_settings.master_key, loaded.data_dir)
    if running is not None:
        progress(f"restart: stopping the lab (pid {running.pid}) and starting it with the new version")
        stop_lab(running, loaded.data_dir)
        proc = start_lab(running.argv, loaded.data_dir)
        gate = health_gate(running.url, key, proc, timeout)
        if not gate.ok:
            stop_process(proc)
        return gate
    port = free_port()
    progress(f"gate: starting a candidate lab on 127.0.0.1:{port}")
    proc = start_lab(candidate_argv(loaded.path, loaded.data_dir, port), loaded.data_dir)
    try:
        return health_gate(f"http://127.0.0.1:{port}", key, proc, timeout)
    finally:
        stop_process(proc)


def _roll_back(
    loaded: LoadedConfig, report: UpgradeReport, running: RunInfo | None, progress: Progress
) -> None:
    from ailab.ops.restore import restore_archive

    assert report.backup is not None
    progress(f"rollback: the health gate failed ({report.gate}); restoring {report.backup}")
    restore_archive(Path(report.backup), loaded, progress=progress)
    report.outcome = "rolled back"
    report.serving = None
    previous = report.previous_version or "the previous version"
    report.detail = (
        f"the new version did not pass the health gate: {report.gate}. The data dir was restored from "
        f"{report.backup}; reinstall {previous} (pip install 'local-ai-lab=={previous}') and start the lab"
        if report.previous_version and report.previous_version != __version__
        else f"the new version did not pass the health gate: {report.gate}. The data dir was restored "
        f"from {report.backup}; see {loaded.data_dir / 'run' / 'lab.log'}"
    )
    if running is not None:
        report.detail += f" (it was started with: {' '.join(running.argv)})"
