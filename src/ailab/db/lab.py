"""Opening the lab's database: its URL, every pillar's migrations, and the private SQLite file.

The server, ops (backup, restore, upgrade, doctor), the stack and the CLI all open the same database the
same way, so this sits in `db/`, below all of them (it imports no pillar but config).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ailab.db.engine import make_engine, sqlite_url
from ailab.db.files import private_sqlite, secure_data_dir
from ailab.db.migrations import Migration, migrate, registered_migrations

if TYPE_CHECKING:
    from ailab.config import LoadedConfig


def database_url(loaded: LoadedConfig) -> str:
    """`general_settings.database_url`, else the data dir's SQLite file."""
    return loaded.config.general_settings.database_url or sqlite_url(loaded.data_dir)


def all_migrations() -> list[Migration]:
    """Every pillar's migrations, then the plugins', all through the `ailab.migrations` entry points."""
    return registered_migrations()


def open_database(loaded: LoadedConfig) -> Engine:
    """The lab's engine, migrated; the data dir made private and the SQLite file created 0600 first."""
    secure_data_dir(loaded.data_dir)  # 0700, files 0600
    url = database_url(loaded)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        private_sqlite(Path(url.removeprefix("sqlite:///").split("?")[0]))
    engine = make_engine(url)
    migrate(engine, all_migrations())
    return engine
