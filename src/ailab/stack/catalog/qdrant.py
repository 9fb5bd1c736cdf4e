"""Qdrant: the vector store shared by the lab's knowledge pillar and Dify."""

from __future__ import annotations

from ailab.stack.model import Backup, Component, Health, MetricsEndpoint, Port, SecretRef, SecretSpec, Volume

COMPONENT = Component(
    name="qdrant",
    description="Qdrant vector database (lab knowledge + Dify)",
    image="qdrant/qdrant",
    tag="v1.13.4",
    phase=1,
    ports=(Port("http", 6333), Port("grpc", 6334)),
    volumes=(Volume("data", "/qdrant/storage", "20Gi"),),
    env={"QDRANT__SERVICE__API_KEY": SecretRef("QDRANT_API_KEY")},
    secrets=(SecretSpec("QDRANT_API_KEY", "token"),),
    # The image has neither curl nor wget; Kubernetes probes /readyz, compose relies on depends_on order.
    health=Health("http", "/readyz"),
    metrics=MetricsEndpoint("http", "/metrics", bearer_secret="QDRANT_API_KEY"),
    backup=Backup(paths=("/qdrant/storage",)),
    auth="own",
)
