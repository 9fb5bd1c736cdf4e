"""Redis: shared limits for several gateway replicas; Dify's cache and queue."""

from __future__ import annotations

from ailab.stack.model import Backup, Component, Health, Port, SecretRef, SecretSpec, Volume

COMPONENT = Component(
    name="redis",
    description="Redis 7 (lab rate limits across replicas, Dify broker)",
    image="redis",
    tag="7.4.2-alpine",
    phase=1,
    ports=(Port("redis", 6379),),
    volumes=(Volume("data", "/data", "2Gi"),),
    # The password comes from the environment so it is not in the compose file or the Pod spec.
    command=("sh", "-c", 'exec redis-server --appendonly yes --requirepass "$REDIS_PASSWORD"'),
    env={"REDIS_PASSWORD": SecretRef("REDIS_PASSWORD"), "REDISCLI_AUTH": SecretRef("REDIS_PASSWORD")},
    secrets=(SecretSpec("REDIS_PASSWORD", "password"),),
    health=Health("redis", None, ("CMD", "redis-cli", "ping"), 5),
    backup=Backup(paths=("/data",)),
    auth="own",
)
