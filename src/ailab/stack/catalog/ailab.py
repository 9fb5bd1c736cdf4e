"""The lab itself: OpenAI-compatible gateway, ledger, access, metrics."""

from __future__ import annotations

from typing import Any

import yaml

from ailab import __version__
from ailab.stack.catalog._common import curl_health
from ailab.stack.model import (
    Backup,
    Component,
    ConfigFile,
    HostPort,
    Join,
    MetricsEndpoint,
    Native,
    NativeContext,
    Port,
    Ref,
    RenderContext,
    SecretRef,
    SecretSpec,
    Volume,
)


def _argv(ctx: NativeContext) -> list[str]:
    return ["-m", "ailab", "up", "--host", "127.0.0.1", "--port", str(ctx.port)]


def _config(ctx: RenderContext) -> list[ConfigFile]:
    """ailab.yaml for a container: secrets stay in the environment (`os.environ/` references)."""
    server: dict[str, Any] = {"host": "0.0.0.0", "port": 8765, "discover_ollama": ctx.has("ollama")}
    if ctx.has("ollama"):
        server["ollama_url"] = ctx.url(Ref("ollama", "http"))
    config: dict[str, Any] = {
        "general_settings": {
            "master_key": "os.environ/AILAB_MASTER_KEY",
            "database_url": "os.environ/AILAB_DATABASE_URL",
        },
        "ailab": server,
        "limits": {"backend": "redis", "redis_url": "os.environ/AILAB_REDIS_URL"},
    }
    return [ConfigFile("ailab.yaml", "/etc/ailab/ailab.yaml", yaml.safe_dump(config, sort_keys=False))]


COMPONENT = Component(
    name="ailab",
    description="Local AI Lab: OpenAI-compatible gateway (LiteLLM-config compatible), cost ledger, access",
    image="ghcr.io/local-ai-lab/ailab",
    tag=__version__,
    phase=1,
    ports=(Port("http", 8765, host=8765),),
    volumes=(Volume("data", "/data"),),
    env={
        "AILAB_CONFIG": "/etc/ailab/ailab.yaml",
        "AILAB_DATA_DIR": "/data",
        "AILAB_MASTER_KEY": SecretRef("AILAB_MASTER_KEY"),
        "AILAB_SECRET_KEY": SecretRef("AILAB_SECRET_KEY"),
        "AILAB_DATABASE_URL": Join(
            (
                "postgresql+psycopg://ailab:",
                SecretRef("POSTGRES_PASSWORD"),
                "@",
                HostPort("postgres", "pg"),
                "/ailab",
            )
        ),
        "AILAB_REDIS_URL": Join(
            ("redis://:", SecretRef("REDIS_PASSWORD"), "@", HostPort("redis", "redis"), "/0")
        ),
        # For the knowledge pillar: the same Qdrant that Dify and Open WebUI use.
        "AILAB_QDRANT_URL": Ref("qdrant", "http"),
        "AILAB_QDRANT_API_KEY": SecretRef("QDRANT_API_KEY"),
    },
    secrets=(
        SecretSpec("AILAB_MASTER_KEY", "token", "the lab's master key (admin API)"),
        SecretSpec("AILAB_SECRET_KEY", "key32", "key that encrypts the lab's local secret store"),
    ),
    health=curl_health(8765, "/health/ready", start_period_s=15),
    metrics=MetricsEndpoint("http", "/metrics", bearer_secret="LAB_KEY_PROMETHEUS"),
    backup=Backup(paths=("/data",)),
    depends_on=("postgres", "redis", "qdrant"),
    auth="lab",
    native=Native("python", _argv, "/health/ready", "part of this package"),
    files=_config,
    postgres_databases=("ailab",),
)
