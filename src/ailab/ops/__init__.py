"""Operations: backup and restore of every store, `ailab doctor`, safe upgrades.

The ops pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.ops.archive import ArchiveError
    from ailab.ops.backup import create_backup
    from ailab.ops.database import DatabaseError
    from ailab.ops.doctor import DoctorContext, all_checks, run_checks, select_checks
    from ailab.ops.restore import restore_archive
    from ailab.ops.runfile import LabRunning, lock_data_dir, remove_runfile, unlock_data_dir, write_runfile
    from ailab.ops.schedule import start_schedule
    from ailab.ops.staging import human
    from ailab.ops.upgrade import UpgradeError
    from ailab.ops.upgrade import upgrade as run_upgrade

_WHERE = {
    "ArchiveError": "ailab.ops.archive",
    "DatabaseError": "ailab.ops.database",
    "DoctorContext": "ailab.ops.doctor",
    "LabRunning": "ailab.ops.runfile",
    "UpgradeError": "ailab.ops.upgrade",
    "run_upgrade": "ailab.ops.upgrade:upgrade",
    "all_checks": "ailab.ops.doctor",
    "create_backup": "ailab.ops.backup",
    "human": "ailab.ops.staging",
    "lock_data_dir": "ailab.ops.runfile",
    "remove_runfile": "ailab.ops.runfile",
    "restore_archive": "ailab.ops.restore",
    "run_checks": "ailab.ops.doctor",
    "select_checks": "ailab.ops.doctor",
    "start_schedule": "ailab.ops.schedule",
    "unlock_data_dir": "ailab.ops.runfile",
    "write_runfile": "ailab.ops.runfile",
}

__all__ = [
    "ArchiveError",
    "DatabaseError",
    "DoctorContext",
    "LabRunning",
    "UpgradeError",
    "all_checks",
    "create_backup",
    "human",
    "lock_data_dir",
    "remove_runfile",
    "restore_archive",
    "run_checks",
    "run_upgrade",
    "select_checks",
    "start_schedule",
    "unlock_data_dir",
    "write_runfile",
]


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
