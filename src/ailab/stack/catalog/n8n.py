"""n8n: workflow automation with the lab as its OpenAI endpoint."""

from __future__ import annotations

from ailab.stack.catalog._common import GATEWAY, lab_key, lab_key_ref, wget_health
from ailab.stack.model import (
    Backup,
    Component,
    HostPort,
    MetricsEndpoint,
    Port,
    SecretRef,
    SecretSpec,
    Volume,
)

COMPONENT = Component(
    name="n8n",
    description="n8n workflow automation (PostgreSQL-backed), OpenAI credential = the lab",
    image="docker.n8n.io/n8nio/n8n",
    tag="1.85.4",
    phase=3,
    ports=(Port("http", 5678, host=5678),),
    volumes=(Volume("data", "/home/node/.n8n", "5Gi"),),
    env={
        "DB_TYPE": "postgresdb",
        "DB_POSTGRESDB_HOST": "postgres",
        "DB_POSTGRESDB_PORT": "5432",
        "DB_POSTGRESDB_DATABASE": "n8n",
        "DB_POSTGRESDB_USER": "ailab",
        "DB_POSTGRESDB_PASSWORD": SecretRef("POSTGRES_PASSWORD"),
        "N8N_ENCRYPTION_KEY": SecretRef("N8N_ENCRYPTION_KEY"),
        "N8N_METRICS": "true",
        "OPENAI_API_BASE": GATEWAY,
        "OPENAI_API_KEY": lab_key_ref("n8n"),
        "QUEUE_BULL_REDIS_HOST": "redis",
        "N8N_RUNNERS_ENABLED": "true",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_HOST_ADDRESS": HostPort("n8n", "http"),
    },
    secrets=(lab_key("n8n"), SecretSpec("N8N_ENCRYPTION_KEY", "token")),
    health=wget_health(5678, "/healthz", start_period_s=30),
    metrics=MetricsEndpoint("http", "/metrics"),
    backup=Backup(paths=("/home/node/.n8n",)),
    depends_on=("postgres", "ailab"),
    auth="own",
    postgres_databases=("n8n",),
)
