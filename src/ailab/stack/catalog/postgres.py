"""PostgreSQL with pgvector: the lab's ledger and the apps' databases."""

from __future__ import annotations

from ailab.stack.model import (
    Backup,
    Component,
    ConfigFile,
    Health,
    Port,
    RenderContext,
    SecretRef,
    SecretSpec,
    Volume,
)


def _init_sql(ctx: RenderContext) -> list[ConfigFile]:
    names = sorted({db for c in ctx.components.values() for db in c.postgres_databases} - {"ailab"})
    sql = "".join(f"CREATE DATABASE {name};\n" for name in names) or "SELECT 1;\n"
    return [ConfigFile("initdb/10-databases.sql", "/docker-entrypoint-initdb.d/10-databases.sql", sql)]


COMPONENT = Component(
    name="postgres",
    description="PostgreSQL 17 with pgvector (ledger, Dify, n8n)",
    image="pgvector/pgvector",
    tag="0.8.0-pg17",
    phase=1,
    ports=(Port("pg", 5432),),
    volumes=(Volume("data", "/var/lib/postgresql/data", "20Gi"),),
    env={
        "POSTGRES_USER": "ailab",
        "POSTGRES_DB": "ailab",
        "POSTGRES_PASSWORD": SecretRef("POSTGRES_PASSWORD"),
        "PGDATA": "/var/lib/postgresql/data/pgdata",
    },
    secrets=(SecretSpec("POSTGRES_PASSWORD", "password", "superuser password (user ailab)"),),
    health=Health("pg", None, ("CMD", "pg_isready", "-U", "ailab", "-d", "ailab"), 10),
    backup=Backup(dump=("pg_dumpall", "-U", "ailab")),
    auth="own",
    files=_init_sql,
)
