"""Prometheus: scrapes every component that has metrics; evaluates the lab's alert rules."""

from __future__ import annotations

from ailab.stack.catalog._common import lab_key, wget_health
from ailab.stack.model import Backup, Component, MetricsEndpoint, Native, NativeContext, Port, Volume
from ailab.stack.monitoring import prometheus_files


def _argv(ctx: NativeContext) -> list[str]:
    return [
        f"--config.file={ctx.data_dir}/prometheus.yml",
        f"--storage.tsdb.path={ctx.data_dir}/tsdb",
        f"--web.listen-address=127.0.0.1:{ctx.port}",
    ]


COMPONENT = Component(
    name="prometheus",
    description="Prometheus: metrics of the lab and every component, alert rules",
    image="prom/prometheus",
    tag="v2.55.1",
    phase=2,
    ports=(Port("http", 9090, host=9090),),
    volumes=(Volume("data", "/prometheus", "20Gi"),),
    command=(
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        "--storage.tsdb.retention.time=30d",
    ),
    secrets=(lab_key("prometheus"),),
    health=wget_health(9090, "/-/ready", start_period_s=10),
    metrics=MetricsEndpoint("http", "/metrics"),
    backup=Backup(paths=("/prometheus",)),
    auth="none",
    native=Native("prometheus", _argv, "/-/ready", "Debian/Ubuntu: apt-get install prometheus"),
    files=prometheus_files,
)
