"""node-exporter: host CPU, memory, disk (the 'disk low' alert)."""

from __future__ import annotations

from ailab.stack.catalog._common import wget_health
from ailab.stack.model import Component, MetricsEndpoint, Port

COMPONENT = Component(
    name="node-exporter",
    description="Host metrics (CPU, memory, disk, network)",
    image="prom/node-exporter",
    tag="v1.9.0",
    phase=2,
    ports=(Port("http", 9100),),
    command=("--path.rootfs=/host",),
    health=wget_health(9100, "/metrics", start_period_s=5),
    metrics=MetricsEndpoint("http", "/metrics"),
    depends_on=("prometheus",),
    privileged_mounts=(("/", "/host"),),
)
