"""Pydantic models for ailab.yaml.

The top level accepts LiteLLM's proxy config (model_list, router_settings, general_settings) so a LiteLLM
user's file runs unchanged; ailab's own settings live under `ailab:`. Unknown keys are kept (extra="allow")
so the loader can warn about them by path instead of dropping them silently.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ailab.config.sso import SsoSettings


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class LiteLLMParams(_Open):
    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    organization: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)  # 0: drained (LiteLLM's way), gets no traffic
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    extra_headers: dict[str, str] | None = None

    @field_validator("model")
    @classmethod
    def _model_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class ModelInfo(_Open):
    id: str | None = None
    mode: Literal["chat", "completion", "embedding", "rerank"] | None = None
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)
    # LiteLLM's names: Anthropic's 1-hour cache writes, and audio tokens (default: the plain rates above)
    cache_creation_input_token_cost_above_1hr: float | None = Field(default=None, ge=0)
    input_cost_per_audio_token: float | None = Field(default=None, ge=0)
    output_cost_per_audio_token: float | None = Field(default=None, ge=0)
    # Self-hosted costing: a GPU-hour price, or power draw times an energy price; apportioned by request time.
    cost_per_hour: float | None = Field(default=None, ge=0)
    watts: float | None = Field(default=None, ge=0)
    kwh_price: float | None = Field(default=None, ge=0)
    base_model: str | None = None
    # /v1/responses: True forwards it to this deployment's own Responses API, False translates it to chat
    # (chat-only servers); unset: native for openai/ and azure/ deployments only.
    responses_api: bool | None = None


class ModelEntry(_Open):
    model_name: str
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)


RoutingStrategy = Literal[
    "simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing", "usage-based-routing-v2"
]


class RouterSettings(_Open):
    routing_strategy: RoutingStrategy = "simple-shuffle"
    num_retries: int = Field(default=2, ge=0)
    timeout: float = Field(default=600.0, gt=0)
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    allowed_fails: int = Field(default=3, ge=0)
    cooldown_time: float = Field(default=30.0, ge=0)
    retry_backoff: float = Field(default=0.5, ge=0, description="first retry delay in seconds; doubles")
    max_retry_delay: float = Field(default=8.0, ge=0)
    # LiteLLM: {"gpt-4": "gpt-3.5-turbo"} or {"gpt-4": {"model": "gpt-3.5-turbo", "hidden": true}}
    model_group_alias: dict[str, str | dict[str, Any]] = Field(default_factory=dict)


class GeneralSettings(_Open):
    master_key: str | None = None
    database_url: str | None = None
    max_request_size_mb: float = Field(default=10.0, gt=0)
    kwh_price: float | None = Field(default=None, ge=0)


class ServerSettings(_Open):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    ledger_batch_size: int = Field(default=20_000, ge=1)  # most rows a transaction takes from the queue
    ledger_flush_interval: float = Field(default=0.25, gt=0)
    ledger_queue_size: int = Field(default=100_000, ge=1)
    # One line per request to a journal file in the data dir, so a hard crash loses no answered request.
    ledger_journal: bool = True
    # /metrics without a key: "auto" allows it only while the lab listens on loopback.
    metrics_auth: Literal["auto", "always", "never"] = "auto"
    discover_ollama: bool = True
    # Stored responses (`store: true` on /v1/responses) are kept this long, then deleted.
    responses_ttl_days: float = Field(default=30.0, gt=0)
    ollama_url: str = "http://127.0.0.1:11434"
    # Slow clients (see docs/configuration.md): seconds to send the request line and headers, to stay
    # silent while sending a body, and to keep an idle connection open between requests.
    header_timeout: float = Field(default=5.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDR networks); none by
    # default, so a client cannot forge its address (login throttling, audit) or claim HTTPS.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for entry in v:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry[:100]!r} is not an IP address or network"
                ) from None
        return [e.strip() for e in v]


class SecretsSettings(_Open):
    """Where secrets live: `local` (AES-GCM in the lab database) or `vault` (Vault / OpenBao KV v2)."""

    backend: Literal["local", "vault"] = "local"
    # local: the 256-bit key comes from AILAB_SECRET_KEY, else this file (created 0600 on first use), kept
    # apart from the data it protects; default ~/.config/ailab/secret.key
    key_file: str | None = None
    vault_url: str | None = None  # default: $VAULT_ADDR
    vault_mount: str = "secret"
    vault_prefix: str = "ailab/"
    vault_auth: Literal["token", "approle"] = "token"
    vault_token: str | None = None  # default: $VAULT_TOKEN
    vault_role_id: str | None = None
    vault_secret_id: str | None = None
    vault_namespace: str | None = None
    refresh_interval: float = Field(default=1.0, gt=0)  # how soon a rotated secret is picked up


class AccessSettings(_Open):
    # Custom roles: name -> permissions (see docs/security.md); built-ins are admin, analyst, user.
    roles: dict[str, list[str]] = Field(default_factory=dict)
    session_ttl_hours: float = Field(default=12.0, gt=0)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: float = Field(default=900.0, gt=0)
    refresh_interval: float = Field(default=0.5, gt=0)  # key revocation reaches every worker within this
    # Repeated denials of one principal on one permission are one audit row (with a count) per window.
    audit_repeat_window_seconds: float = Field(default=60.0, ge=0)
    sso: SsoSettings = Field(default_factory=SsoSettings)  # OpenID Connect, tunnel identity (docs/sso.md)


class LimitsSettings(_Open):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    # Completion tokens assumed when reserving budget for a request that sets no max_tokens.
    default_max_tokens: int = Field(default=1024, ge=1)


class KnowledgeSettings(BaseModel):
    """`knowledge:` (see docs/knowledge.md)."""

    model_config = ConfigDict(extra="forbid")
    store: str = "embedded"
    stores: dict[str, dict[str, Any]] = Field(default_factory=dict)  # e.g. qdrant: {url: http://qdrant:6333}
    embedding_model: str = "all-MiniLM-L6-v2"  # the built-in offline embedder's model group
    chat_model: str | None = None
    chunk_tokens: int = Field(default=200, ge=16, le=2048)
    overlap: int = Field(default=32, ge=0, le=512)
    top_k: int = Field(default=5, ge=1, le=100)
    # A gateway rerank model group (`/v1/rerank`, model_info.mode: rerank): search sends its fused top
    # `rerank_candidates` chunks through it and reorders by relevance. Unset: no reranking.
    rerank_model: str | None = None
    rerank_candidates: int = Field(default=30, ge=1, le=1000)
    max_upload_mb: float = Field(default=200.0, gt=0)  # one multipart upload, all its files together
    max_file_mb: float = Field(default=50.0, gt=0)  # one document (uploaded or ingested from disk)
    # Parsing runs in worker processes; a document over these limits fails alone, with the reason.
    parse_workers: int = Field(default=1, ge=1, le=64)
    parse_timeout: float = Field(default=60.0, gt=0)  # seconds per document
    parse_memory_mb: int = Field(default=1024, ge=64)  # a worker's resident memory while parsing


class BackupSettings(_Open):
    """`backup:` (see docs/operations.md): where `ailab backup` writes, how many it keeps, and a schedule."""

    dir: str | None = None  # default: <data dir>/backups
    keep: int = Field(default=7, ge=0)  # newest archives kept in `dir`; 0 keeps all
    schedule: str | None = None  # cron expression, e.g. "0 3 * * *"; run by `ailab up`
    include_key: bool = False  # put the local secret store's key in the archive (keep such archives safe)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"not a cron expression: {v!r} (e.g. '0 3 * * *': every day at 03:00)")
        return v


class LabConfig(_Open):
    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    # Accepted so LiteLLM files load; ailab reads none of these and warns about each key.
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    ailab: ServerSettings = Field(default_factory=ServerSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    # Apps (docs/apps.md): definitions here (a list, or name -> app) and/or one YAML file per app in
    # `apps_dir` (default: the `apps` folder next to this file). Checked by ailab.apps, field by field.
    apps: list[Any] | dict[str, Any] = Field(default_factory=list)
    apps_dir: str | None = None
