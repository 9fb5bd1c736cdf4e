"""The lab itself: OpenAI-compatible gateway, ledger, access, metrics."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from ailab import __version__
from ailab.stack.model import (
    Backup,
    Component,
    ConfigFile,
    Health,
    HostPort,
    Join,
    MetricsEndpoint,
    Native,
    NativeContext,
    Port,
    Ref,
    RenderContext,
    Scale,
    SecretRef,
    SecretSpec,
    Volume,
)


def _argv(ctx: NativeContext) -> list[str]:
    return ["-m", "ailab", "up", "--host", ctx.host, "--port", str(ctx.port)]


def _config(ctx: RenderContext) -> list[ConfigFile]:
    """The user's ailab.yaml (already credential-free, see stack/labconfig.py) wired to the stack."""
    config: dict[str, Any] = copy.deepcopy(ctx.lab_config)
    general = config.setdefault("general_settings", {}) or {}
    config["general_settings"] = general
    general["master_key"] = "os.environ/AILAB_MASTER_KEY"
    # The ledger and limits stores come from the environment (AILAB_LEDGER + AILAB_DATABASE_URL,
    # AILAB_LIMITS_BACKEND + AILAB_REDIS_URL), so the chart can switch them without a new config.
    general.pop("database_url", None)
    server = dict(config.get("ailab") or {})
    server.update({"host": "0.0.0.0", "port": 8765})
    if ctx.has("ollama"):
        server.update({"discover_ollama": True, "ollama_url": ctx.url(Ref("ollama", "http"))})
    else:
        server.setdefault("discover_ollama", False)
    config["ailab"] = server
    limits = {k: v for k, v in (config.get("limits") or {}).items() if k not in ("backend", "redis_url")}
    if limits:
        config["limits"] = limits
    else:
        config.pop("limits", None)
    if ctx.has("qdrant"):
        config["knowledge"] = _knowledge(dict(config.get("knowledge") or {}))
    secrets = dict(config.get("secrets") or {})
    secrets.pop("key_file", None)  # a host path; the container's key comes from AILAB_SECRET_KEY
    if secrets:
        config["secrets"] = secrets
    if isinstance(config.get("backup"), dict):
        config["backup"].pop("dir", None)  # a host path; archives go to the data volume
    return [ConfigFile("ailab.yaml", "/etc/ailab/ailab.yaml", yaml.safe_dump(config, sort_keys=False))]


def _knowledge(knowledge: dict[str, Any]) -> dict[str, Any]:
    """Collections go to the stack's Qdrant (unless the user chose another server store, e.g. Milvus)."""
    if knowledge.get("store", "embedded") in ("embedded", "qdrant"):
        knowledge["store"] = "qdrant"
    stores = dict(knowledge.get("stores") or {})
    stores["qdrant"] = {"url": "os.environ/AILAB_QDRANT_URL", "api_key": "os.environ/AILAB_QDRANT_API_KEY"}
    knowledge["stores"] = stores
    return knowledge


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
        # Which shared stores the replicas use; the Helm chart refuses sqlite/memory with replicas > 1.
        "AILAB_LEDGER": "postgres",
        "AILAB_LIMITS_BACKEND": "redis",
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
    # The image has no curl: its health check is a stdlib one-liner shipped in the package.
    health=Health(
        "http",
        "/health/ready",
        ("CMD", "python", "-m", "ailab.stack.healthcheck", "http://127.0.0.1:8765/health/ready"),
        15,
        live_path="/health/live",
    ),
    scale=Scale(
        requests={"cpu": "250m", "memory": "512Mi"},
        limits={"cpu": "2", "memory": "2Gi"},
        secret_env=("AILAB_DATABASE_URL", "AILAB_REDIS_URL", "AILAB_QDRANT_URL"),
    ),
    metrics=MetricsEndpoint("http", "/metrics", bearer_secret="LAB_KEY_PROMETHEUS"),
    backup=Backup(paths=("/data",)),
    depends_on=("postgres", "redis", "qdrant"),
    auth="lab",
    native=Native("python", _argv, "/health/ready", "part of this package"),
    files=_config,
    postgres_databases=("ailab",),
)
