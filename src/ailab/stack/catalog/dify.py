"""Dify, its full service set: api, worker, web, sandbox, plugin daemon, SSRF proxy and the nginx front.

Dify shares the stack's PostgreSQL, Redis and Qdrant with the lab. Dify configures model providers in
its own UI (no environment setting exists), so the one-shot `dify-setup` job does it through Dify's
console API once Dify is up: the admin account, the lab as "OpenAI-API-compatible" provider and as
external knowledge, and the lab's apps imported as Dify apps (`ailab apps provision-dify`, docs/apps.md).
"""

from __future__ import annotations

from ailab import __version__
from ailab.stack.catalog._common import GATEWAY, lab_key, lab_key_ref
from ailab.stack.model import (
    Backup,
    Component,
    ConfigFile,
    EnvValue,
    Health,
    HostPort,
    Join,
    Port,
    Ref,
    RenderContext,
    SecretRef,
    SecretSpec,
    Volume,
)

TAG = "1.1.3"
REDIS_PASSWORD = SecretRef("REDIS_PASSWORD")

_DB: dict[str, EnvValue] = {
    "DB_USERNAME": "ailab",
    "DB_PASSWORD": SecretRef("POSTGRES_PASSWORD"),
    "DB_HOST": "postgres",
    "DB_PORT": "5432",
}
_REDIS: dict[str, EnvValue] = {"REDIS_HOST": "redis", "REDIS_PORT": "6379", "REDIS_PASSWORD": REDIS_PASSWORD}

_API_ENV: dict[str, EnvValue] = {
    **_DB,
    **_REDIS,
    "DB_DATABASE": "dify",
    "SECRET_KEY": SecretRef("DIFY_SECRET_KEY"),
    "CELERY_BROKER_URL": Join(("redis://:", REDIS_PASSWORD, "@", HostPort("redis", "redis"), "/1")),
    "VECTOR_STORE": "qdrant",
    "QDRANT_URL": Ref("qdrant", "http"),
    "QDRANT_API_KEY": SecretRef("QDRANT_API_KEY"),
    "STORAGE_TYPE": "opendal",
    "OPENDAL_SCHEME": "fs",
    "OPENDAL_FS_ROOT": "/app/api/storage",
    "CODE_EXECUTION_ENDPOINT": Ref("dify-sandbox", "http"),
    "CODE_EXECUTION_API_KEY": SecretRef("DIFY_SANDBOX_KEY"),
    "PLUGIN_DAEMON_URL": Ref("dify-plugin-daemon", "http"),
    "PLUGIN_DAEMON_KEY": SecretRef("DIFY_PLUGIN_DAEMON_KEY"),
    "INNER_API_KEY_FOR_PLUGIN": SecretRef("DIFY_INNER_API_KEY"),
    "SSRF_PROXY_HTTP_URL": Ref("dify-ssrf-proxy", "proxy"),
    "SSRF_PROXY_HTTPS_URL": Ref("dify-ssrf-proxy", "proxy"),
    "MIGRATION_ENABLED": "true",
    "LAB_OPENAI_BASE_URL": GATEWAY,
    "LAB_OPENAI_API_KEY": lab_key_ref("dify"),
}
_STORAGE = (Volume("storage", "/app/api/storage", "20Gi"),)

_NGINX_CONF = """server {{
    listen 80;
    client_max_body_size 100M;
    location ~ ^/(console/api|api|v1|files) {{ proxy_pass http://{api}; proxy_set_header Host $host; }}
    location /e/ {{ proxy_pass http://{plugin}; proxy_set_header Host $host; }}
    location / {{ proxy_pass http://{web}; proxy_set_header Host $host; }}
}}
"""

_SQUID_CONF = """acl localnet src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 fe80::/10
acl SSL_ports port 443
acl Safe_ports port 80 443
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localnet
http_access deny all
http_port 3128
"""


def _nginx(ctx: RenderContext) -> list[ConfigFile]:
    conf = _NGINX_CONF.format(
        api=ctx.address("dify-api", "http"),
        web=ctx.address("dify-web", "http"),
        plugin=ctx.address("dify-plugin-daemon", "http"),
    )
    return [ConfigFile("default.conf", "/etc/nginx/conf.d/default.conf", conf)]


def _squid(ctx: RenderContext) -> list[ConfigFile]:
    return [ConfigFile("squid.conf", "/etc/squid/squid.conf", _SQUID_CONF)]


_BASE = ("postgres", "redis", "qdrant", "ailab")

COMPONENTS = [
    Component(
        name="dify-api",
        description="Dify API (migrates its database on start)",
        image="langgenius/dify-api",
        tag=TAG,
        phase=3,
        ports=(Port("http", 5001),),
        volumes=_STORAGE,
        env={**_API_ENV, "MODE": "api"},
        secrets=(
            lab_key("dify"),
            SecretSpec("DIFY_SECRET_KEY", "token"),
            SecretSpec("DIFY_INNER_API_KEY", "token"),
        ),
        health=Health("http", "/health", ("CMD", "curl", "-fsS", "http://127.0.0.1:5001/health"), 60),
        backup=Backup(paths=("/app/api/storage",)),
        depends_on=(*_BASE, "dify-sandbox", "dify-plugin-daemon", "dify-ssrf-proxy"),
        group="dify",
        postgres_databases=("dify", "dify_plugin"),
    ),
    Component(
        name="dify-worker",
        description="Dify Celery worker (indexing, workflows)",
        image="langgenius/dify-api",
        tag=TAG,
        phase=3,
        volumes=_STORAGE,
        env={**_API_ENV, "MODE": "worker"},
        depends_on=("dify-api",),
        group="dify",
    ),
    Component(
        name="dify-web",
        description="Dify web console",
        image="langgenius/dify-web",
        tag=TAG,
        phase=3,
        ports=(Port("http", 3000),),
        env={"CONSOLE_API_URL": "", "APP_API_URL": "", "NEXT_TELEMETRY_DISABLED": "1"},
        health=Health("http", "/apps"),
        depends_on=("dify-api",),
        group="dify",
    ),
    Component(
        name="dify-sandbox",
        description="Dify code sandbox (egress only through the SSRF proxy)",
        image="langgenius/dify-sandbox",
        tag="0.2.11",
        phase=3,
        ports=(Port("http", 8194),),
        env={
            "API_KEY": SecretRef("DIFY_SANDBOX_KEY"),
            "ENABLE_NETWORK": "true",
            "HTTP_PROXY": Ref("dify-ssrf-proxy", "proxy"),
            "HTTPS_PROXY": Ref("dify-ssrf-proxy", "proxy"),
        },
        secrets=(SecretSpec("DIFY_SANDBOX_KEY", "token"),),
        health=Health("http", "/health", ("CMD", "curl", "-fsS", "http://127.0.0.1:8194/health")),
        depends_on=("dify-ssrf-proxy",),
        group="dify",
    ),
    Component(
        name="dify-plugin-daemon",
        description="Dify plugin daemon",
        image="langgenius/dify-plugin-daemon",
        tag="0.0.6-local",
        phase=3,
        ports=(Port("http", 5002),),
        volumes=(Volume("plugins", "/app/storage", "10Gi"),),
        env={
            **_DB,
            **_REDIS,
            "DB_DATABASE": "dify_plugin",
            "SERVER_PORT": "5002",
            "SERVER_KEY": SecretRef("DIFY_PLUGIN_DAEMON_KEY"),
            "DIFY_INNER_API_URL": Ref("dify-api", "http"),
            "DIFY_INNER_API_KEY": SecretRef("DIFY_INNER_API_KEY"),
        },
        secrets=(SecretSpec("DIFY_PLUGIN_DAEMON_KEY", "token"),),
        health=Health("http", None),
        backup=Backup(paths=("/app/storage",)),
        depends_on=("postgres", "redis"),
        group="dify",
    ),
    Component(
        name="dify-ssrf-proxy",
        description="Squid proxy that keeps Dify's outbound requests off private networks",
        image="ubuntu/squid",
        tag="6.10-24.10_beta",
        phase=3,
        ports=(Port("proxy", 3128),),
        health=Health("proxy", None),
        group="dify",
        files=_squid,
    ),
    Component(
        name="dify-setup",
        description="One-shot job: Dify's admin, the lab as its model provider and knowledge, the lab's apps",
        image="ghcr.io/local-ai-lab/ailab",  # the lab's own image (ENTRYPOINT ailab)
        tag=__version__,
        phase=3,
        command=("apps", "provision-dify"),
        env={
            "DIFY_URL": Ref("dify", "http"),
            "LAB_URL": Ref("ailab", "http"),
            "AILAB_MASTER_KEY": SecretRef("AILAB_MASTER_KEY"),  # reads the apps' definitions
            "LAB_OPENAI_API_KEY": lab_key_ref("dify"),  # what Dify calls the lab with
            "DIFY_ADMIN_EMAIL": "admin@ailab.local",
            "DIFY_ADMIN_PASSWORD": SecretRef("DIFY_ADMIN_PASSWORD"),
        },
        secrets=(SecretSpec("DIFY_ADMIN_PASSWORD", "password", "Dify's admin account (admin@ailab.local)"),),
        depends_on=("dify", "ailab"),
        group="dify",
        job=True,
    ),
    Component(
        name="dify",
        description="Dify front (nginx): console, API and apps on one origin",
        image="nginx",
        tag="1.27.4-alpine",
        phase=3,
        ports=(Port("http", 80, host=8081),),
        health=Health("http", "/", ("CMD", "wget", "-q", "--spider", "http://127.0.0.1/")),
        depends_on=("dify-api", "dify-web", "dify-worker"),
        group="dify",
        auth="own",
        files=_nginx,
    ),
]
