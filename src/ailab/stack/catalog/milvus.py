"""Milvus standalone (embedded etcd, local storage): the advanced vector database."""

from __future__ import annotations

from ailab.stack.model import Backup, Component, Health, MetricsEndpoint, Port, Volume

COMPONENT = Component(
    name="milvus",
    description="Milvus standalone vector database (internal only: keep it off public routes)",
    image="milvusdb/milvus",
    tag="v2.5.6",
    phase=4,
    ports=(Port("grpc", 19530), Port("http", 9091)),
    volumes=(Volume("data", "/var/lib/milvus", "50Gi"),),
    command=("milvus", "run", "standalone"),
    env={
        "ETCD_USE_EMBED": "true",
        "ETCD_DATA_DIR": "/var/lib/milvus/etcd",
        "COMMON_STORAGETYPE": "local",
    },
    health=Health("http", "/healthz", ("CMD", "curl", "-fsS", "http://127.0.0.1:9091/healthz"), 90),
    metrics=MetricsEndpoint("http", "/metrics"),
    backup=Backup(paths=("/var/lib/milvus",)),
    auth="none",
)
