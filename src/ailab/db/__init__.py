"""Database engine and append-only, named migrations (SQLite by default, PostgreSQL by URL)."""

from ailab.db.engine import make_engine, sqlite_url
from ailab.db.migrations import migrate

__all__ = ["make_engine", "migrate", "sqlite_url"]
