"""Database engine, append-only named migrations, and opening the lab's database (SQLite by default,
PostgreSQL by URL). The door other pillars import from."""

from ailab.db.bulk import driver_error, insert_many
from ailab.db.engine import make_engine, normalize_url, sqlite_url
from ailab.db.files import private_sqlite, private_umask, secure_data_dir
from ailab.db.lab import all_migrations, database_url, open_database
from ailab.db.migrations import (
    Migration,
    MigrationError,
    applied_migrations,
    migrate,
    pending_migrations,
    registered_migrations,
)

__all__ = [
    "Migration",
    "MigrationError",
    "all_migrations",
    "applied_migrations",
    "database_url",
    "driver_error",
    "insert_many",
    "make_engine",
    "migrate",
    "normalize_url",
    "open_database",
    "pending_migrations",
    "private_sqlite",
    "private_umask",
    "registered_migrations",
    "secure_data_dir",
    "sqlite_url",
]
