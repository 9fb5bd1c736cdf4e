"""Identity tables: users, projects, memberships, virtual API keys, sessions, login attempts, the audit log.

Money is integer pico-USD (like the ledger). `access_state.version` is bumped by every change to users,
projects or keys: each gateway process polls it (cheaply) to refresh its in-memory key cache.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from ailab.db import Migration

metadata = MetaData()


def _limits() -> list[Column[object]]:
    """Budget and rate-limit columns shared by users, projects and keys."""
    return [
        Column("max_budget_pusd", BigInteger),
        Column("budget_duration", String(16)),  # daily | weekly | monthly | NULL (lifetime)
        Column("rpm", Integer),
        Column("tpm", Integer),
    ]


users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("password_hash", String(200)),
    Column("role", String(64), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    *_limits(),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    *_limits(),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("prefix", String(32), nullable=False),  # shown in listings; never enough to use the key
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the whole key
    Column("name", String(200)),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE")),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE")),
    Column("allowed_models", Text),  # JSON list, NULL = all
    Column("expires_ms", BigInteger),
    Column("revoked_ms", BigInteger),
    Column("created_ms", BigInteger, nullable=False),
    *_limits(),
    Column("parent_id", String(32)),  # the key that created this one (revoked with it); access_0002
    Index("ix_api_keys_user", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(200), nullable=False),
    Column("client", String(64), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Index("ix_login_attempts_user_ts", "username", "ts_ms"),
)

access_state = Table(
    "access_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(400)),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# The chain head, updated by compare-and-set in the same transaction as each append, so two writers
# (processes, workers) can never fork the chain.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_hash", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("keyed", Boolean, default=False),  # the chain is MAC'd under the lab's key (access_0003)
)

GENESIS = "0" * 64


def _create_0001(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(access_state.insert().values(id=1, version=0))
    conn.execute(audit_head.insert().values(id=1, last_hash=GENESIS, count=0))


def _add_column(conn: Connection, table: Table, column: str) -> None:
    """Add a column declared above to a table created before it was (create_all already has it)."""
    if column in {c["name"] for c in inspect(conn).get_columns(table.name)}:
        return
    col = table.c[column]
    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column} {col.type.compile(conn.dialect)}"))


def _key_parent_0002(conn: Connection) -> None:
    _add_column(conn, api_keys, "parent_id")


MIGRATIONS = [
    Migration("access_0001_identity_keys_audit", _create_0001),
    Migration("access_0002_key_parent", _key_parent_0002),
    # Existing chains are re-chained under the lab's key at first use (ailab.access.audit), when they verify.
    Migration("access_0003_audit_keyed", lambda conn: _add_column(conn, audit_head, "keyed")),
    Migration("access_0004_sso", lambda conn: _sso_tables(conn)),
]


def _sso_tables(conn: Connection) -> None:
    from ailab.access.sso.store import create_tables  # SSO's own tables (sign-ins, links, sessions)

    create_tables(conn)
