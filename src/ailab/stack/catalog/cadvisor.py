"""cAdvisor: per-container CPU and memory."""

from __future__ import annotations

from ailab.stack.catalog._common import wget_health
from ailab.stack.model import Component, MetricsEndpoint, Port

COMPONENT = Component(
    name="cadvisor",
    description="Container metrics (CPU, memory, I/O per container)",
    image="gcr.io/cadvisor/cadvisor",
    tag="v0.49.2",
    phase=2,
    ports=(Port("http", 8080),),
    health=wget_health(8080, "/healthz", start_period_s=10),
    metrics=MetricsEndpoint("http", "/metrics"),
    depends_on=("prometheus",),
    privileged_mounts=(
        ("/", "/rootfs"),
        ("/var/run", "/var/run"),
        ("/sys", "/sys"),
        ("/var/lib/docker", "/var/lib/docker"),
    ),
)
