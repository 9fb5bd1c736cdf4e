"""The ledger's tables. A row is lean: integers, with repeated strings (model group, deployment, provider,
key, user, project, error type) interned once in `ledger_dims`. Cost is an exact integer in pico-USD
(1e-12 USD) so sums reconcile to the last digit; NULL means "no price known", never 0.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, SmallInteger, String, Table

from ailab.db.migrations import Migration

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
    Column("endpoint", SmallInteger, nullable=False),  # 1 chat, 2 embeddings
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
    Index("ix_ledger_requests_ts", "ts_ms"),
)

FLAG_STREAM = 1
FLAG_ESTIMATED = 2
ENDPOINT_CHAT = 1
ENDPOINT_EMBEDDINGS = 2
ENDPOINTS = {ENDPOINT_CHAT: "chat", ENDPOINT_EMBEDDINGS: "embeddings"}
PICO = 10**12


def _create_0001(conn: Connection) -> None:
    metadata.create_all(conn, tables=[dims, requests])


MIGRATIONS = [Migration("ledger_0001_requests_and_dims", _create_0001)]
