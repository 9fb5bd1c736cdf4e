"""Grafana: the Prometheus datasource and the lab's dashboards, provisioned."""

from __future__ import annotations

from ailab.stack.catalog._common import wget_health
from ailab.stack.model import Backup, Component, MetricsEndpoint, Port, SecretRef, SecretSpec, Volume
from ailab.stack.monitoring import grafana_files

COMPONENT = Component(
    name="grafana",
    description="Grafana with the lab's dashboards (overview, gateway, cost, knowledge, system)",
    image="grafana/grafana",
    tag="11.5.2",
    phase=2,
    ports=(Port("http", 3000, host=3000),),
    volumes=(Volume("data", "/var/lib/grafana", "2Gi"),),
    env={
        "GF_SECURITY_ADMIN_USER": "admin",
        "GF_SECURITY_ADMIN_PASSWORD": SecretRef("GRAFANA_ADMIN_PASSWORD"),
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
    },
    secrets=(SecretSpec("GRAFANA_ADMIN_PASSWORD", "password", "Grafana admin password (user admin)"),),
    health=wget_health(3000, "/api/health"),
    metrics=MetricsEndpoint("http", "/metrics"),
    backup=Backup(paths=("/var/lib/grafana",)),
    depends_on=("prometheus",),
    auth="own",
    files=grafana_files,
)
