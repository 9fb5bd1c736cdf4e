"""The ledger's tables. A row is lean: integers, with repeated strings (model group, deployment, provider,
key, user, project, error type) interned once in `ledger_dims`. Cost is an exact integer in pico-USD
(1e-12 USD) so sums reconcile to the last digit; NULL means "no price known", never 0.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    inspect,
    text,
)

from ailab.db import Migration

metadata = MetaData()

dims = Table(
    "ledger_dims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("value", String(400), nullable=False),
    Index("ux_ledger_dims_kind_value", "kind", "value", unique=True),
)

requests = Table(
    "ledger_requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("endpoint", SmallInteger, nullable=False),  # ENDPOINT_* below
    Column("key_dim", Integer),
    Column("user_dim", Integer),
    Column("project_dim", Integer),
    Column("group_dim", Integer),
    Column("deployment_dim", Integer),
    Column("provider_dim", Integer),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("ttft_ms", Integer),
    Column("status", SmallInteger, nullable=False),
    Column("error_dim", Integer),
    Column("cost_pusd", BigInteger),
    Column("flags", SmallInteger, nullable=False),  # bit 0 stream, bit 1 estimated tokens
    Column("retries", SmallInteger, nullable=False),
    # Of cache_write_tokens, those written with a 1-hour lifetime (Anthropic), priced apart (ledger_0004).
    Column("cache_write_1h_tokens", Integer, nullable=False, server_default=text("0")),
    # The app (ailab.apps) a call was made for; NULL for plain model calls (ledger_0005).
    Column("app_dim", Integer),
    # The fallback path when more than one upstream call was made, interned (kind "path"):
    # "g:openai/a#0 ✗timeout → h:openai/b#0 ✓"; NULL for a request served by its first call (ledger_0007).
    Column("path_dim", Integer),
    Index("ix_ledger_requests_ts", "ts_ms"),
)

# Per-day totals by every dimension, upserted by the writer in the same transaction as the rows it sums:
# reports read whole days here and scan raw rows only for a partial first day. Missing dimensions are 0.
DAILY_DIMS = (
    "group_dim",
    "deployment_dim",
    "provider_dim",
    "key_dim",
    "user_dim",
    "project_dim",
    "error_dim",
    "app_dim",
)
DAILY_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_pusd",
    "unpriced",
)
daily = Table(
    "ledger_daily",
    metadata,
    Column("day", Integer, primary_key=True),  # days since 1970-01-01 UTC
    *(Column(d, Integer, primary_key=True) for d in DAILY_DIMS),
    *(Column(s, BigInteger, nullable=False) for s in DAILY_SUMS),
)

# Narrow totals per (span, kind, bucket, dimension value): one row per hour or day for each value of one
# dimension (kind 1.. = DAILY_DIMS[kind - 1]; kind 0 = everything, dim 0), upserted with the rows like the
# daily rollup. A report by one dimension (or by day, or an hourly series), with at most one filter and of
# the same kind, reads a few thousand of these, not every dimension combination of `ledger_daily` (0006).
SPAN_HOUR = 0
SPAN_DAY = 1
KIND_ALL = 0
TOTALS_KEY = ("span", "kind", "t", "dim")
totals = Table(
    "ledger_totals",
    metadata,
    Column("span", SmallInteger, primary_key=True),
    Column("kind", SmallInteger, primary_key=True),
    Column("t", Integer, primary_key=True),  # hours or days since 1970-01-01 UTC
    Column("dim", Integer, primary_key=True),
    *(Column(s, BigInteger, nullable=False) for s in DAILY_SUMS),
    sqlite_with_rowid=False,  # the key is the table: a range of it is read in one pass
)

FLAG_STREAM = 1
FLAG_ESTIMATED = 2
ENDPOINT_CHAT = 1
ENDPOINT_EMBEDDINGS = 2
# Reserved for the endpoints of issue 17 (one id each, so that merged branches never collide).
ENDPOINT_COMPLETIONS = 3
ENDPOINT_RERANK = 4
ENDPOINT_RESPONSES = 5
ENDPOINT_MESSAGES = 6
ENDPOINTS = {
    ENDPOINT_CHAT: "chat",
    ENDPOINT_EMBEDDINGS: "embeddings",
    ENDPOINT_COMPLETIONS: "completions",
    ENDPOINT_RERANK: "rerank",
    ENDPOINT_RESPONSES: "responses",
    ENDPOINT_MESSAGES: "messages",
}
DAY_MS = 86_400_000  # a rollup day, in the rows' ts_ms unit
HOUR_MS = 3_600_000


def _create_0001(conn: Connection) -> None:
    metadata.create_all(conn, tables=[dims, requests])


def _create_0002(conn: Connection) -> None:
    """The daily rollup, backfilled from the rows already in the ledger."""
    metadata.create_all(conn, tables=[daily])
    _backfill_daily(conn)


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def _backfill_daily(conn: Connection) -> None:
    # The dimensions both tables have at this point of the migrations (app_dim arrives with ledger_0005).
    present = _columns(conn, "ledger_daily") & _columns(conn, "ledger_requests")
    names = [d for d in DAILY_DIMS if d in present]
    dims = ", ".join(f"COALESCE({d}, 0)" for d in names)
    conn.exec_driver_sql(
        f"INSERT INTO ledger_daily (day, {', '.join(names)}, {', '.join(DAILY_SUMS)}) "
        f"SELECT ts_ms / 86400000, {dims}, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
        "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), COALESCE(SUM(cost_pusd), 0), "
        "SUM(CASE WHEN cost_pusd IS NULL THEN 1 ELSE 0 END) "
        f"FROM ledger_requests GROUP BY ts_ms / 86400000, {dims}"
    )


def _unique_request_id_0003(conn: Connection) -> None:
    """A request id is one row: replaying journals and spill files after a crash skips ids already there.
    Duplicates that an earlier version could leave (spill files imported twice) go first, and the rollup is
    then rebuilt from the rows that remain."""
    gone = conn.exec_driver_sql(
        "DELETE FROM ledger_requests WHERE id NOT IN "
        "(SELECT MIN(id) FROM ledger_requests GROUP BY request_id)"
    ).rowcount
    if gone:
        conn.exec_driver_sql("DELETE FROM ledger_daily")
        _backfill_daily(conn)
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_ledger_requests_request_id ON ledger_requests (request_id)"
    )


def _add_0004(conn: Connection) -> None:
    """The 1-hour cache writes column; rows written before it have none (0). A database created by this
    version's ledger_0001 has it already."""
    if "cache_write_1h_tokens" not in _columns(conn, "ledger_requests"):
        conn.exec_driver_sql(
            "ALTER TABLE ledger_requests ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0"
        )


def _add_app_0005(conn: Connection) -> None:
    """The app dimension: a nullable column on the rows, and a rollup key column (0: no app). A database
    created by this version's ledger_0001/0002 has both already."""
    if "app_dim" not in _columns(conn, "ledger_requests"):
        conn.exec_driver_sql("ALTER TABLE ledger_requests ADD COLUMN app_dim INTEGER")
    if "app_dim" in _columns(conn, "ledger_daily"):
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE ledger_daily ADD COLUMN app_dim INTEGER NOT NULL DEFAULT 0")
        conn.exec_driver_sql("ALTER TABLE ledger_daily DROP CONSTRAINT ledger_daily_pkey")
        conn.exec_driver_sql(f"ALTER TABLE ledger_daily ADD PRIMARY KEY (day, {', '.join(DAILY_DIMS)})")
        return
    # SQLite cannot change a primary key: rebuild the rollup table with the new key, keeping its sums.
    old = [d for d in DAILY_DIMS if d != "app_dim"]
    conn.exec_driver_sql("ALTER TABLE ledger_daily RENAME TO ledger_daily_0004")
    metadata.create_all(conn, tables=[daily])
    cols = ", ".join(["day", *old, *DAILY_SUMS])
    conn.exec_driver_sql(
        f"INSERT INTO ledger_daily ({cols}, app_dim) SELECT {cols}, 0 FROM ledger_daily_0004"
    )
    conn.exec_driver_sql("DROP TABLE ledger_daily_0004")


def _totals_0006(conn: Connection) -> None:
    """The narrow totals, backfilled: days from the daily rollup, hours from the rows (one pass a kind;
    about a minute on a 10M-row SQLite ledger)."""
    metadata.create_all(conn, tables=[totals])
    sums = ", ".join(f"SUM({s})" for s in DAILY_SUMS)
    cols = f"span, kind, t, dim, {', '.join(DAILY_SUMS)}"
    raw = (
        "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
        "SUM(completion_tokens), SUM(cached_tokens), COALESCE(SUM(cost_pusd), 0), "
        "SUM(CASE WHEN cost_pusd IS NULL THEN 1 ELSE 0 END)"
    )
    for kind, dim in enumerate((None, *DAILY_DIMS)):
        # Kind 0 (everything) groups by time alone; a constant in GROUP BY would name a column.
        value, by = ("0", "") if dim is None else (dim, f", {dim}")
        conn.exec_driver_sql(
            f"INSERT INTO ledger_totals ({cols}) SELECT {SPAN_DAY}, {kind}, day, {value}, {sums} "
            f"FROM ledger_daily GROUP BY day{by}"
        )
        value, by = ("0", "") if dim is None else (f"COALESCE({dim}, 0)", f", COALESCE({dim}, 0)")
        conn.exec_driver_sql(
            f"INSERT INTO ledger_totals ({cols}) SELECT {SPAN_HOUR}, {kind}, ts_ms / {HOUR_MS}, {value}, "
            f"{raw} FROM ledger_requests GROUP BY ts_ms / {HOUR_MS}{by}"
        )


def _add_path_0007(conn: Connection) -> None:
    """The fallback path column; rows written before it have none (NULL: no path recorded). Not a rollup
    dimension: reports do not group by it. A database created by this version's ledger_0001 has it."""
    if "path_dim" not in _columns(conn, "ledger_requests"):
        conn.exec_driver_sql("ALTER TABLE ledger_requests ADD COLUMN path_dim INTEGER")


MIGRATIONS = [
    Migration("ledger_0001_requests_and_dims", _create_0001),
    Migration("ledger_0002_daily_rollup", _create_0002),
    Migration("ledger_0003_unique_request_id", _unique_request_id_0003),
    Migration("ledger_0004_cache_write_1h_tokens", _add_0004),
    Migration("ledger_0005_app", _add_app_0005),
    Migration("ledger_0006_totals", _totals_0006),
    Migration("ledger_0007_path", _add_path_0007),
]
