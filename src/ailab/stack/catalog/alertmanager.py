"""Alertmanager: receives the lab's alerts from Prometheus."""

from __future__ import annotations

from ailab.stack.catalog._common import wget_health
from ailab.stack.model import Component, MetricsEndpoint, Port, Volume
from ailab.stack.monitoring import alertmanager_files

COMPONENT = Component(
    name="alertmanager",
    description="Alertmanager: routes the lab's alerts (add a receiver in its config)",
    image="prom/alertmanager",
    tag="v0.28.1",
    phase=2,
    ports=(Port("http", 9093),),
    volumes=(Volume("data", "/alertmanager", "1Gi"),),
    command=("--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"),
    health=wget_health(9093, "/-/ready", start_period_s=10),
    metrics=MetricsEndpoint("http", "/metrics"),
    depends_on=("prometheus",),
    auth="none",
    files=alertmanager_files,
)
