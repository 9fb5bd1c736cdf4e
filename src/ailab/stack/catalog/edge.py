"""The edge: Traefik (routes), Cloudflare Tunnel and Tailscale Funnel (public reach).

Every public route goes through Traefik, and `ailab.stack.public` refuses to render a route to a
component with no authentication in front of it; the tunnel and the funnel only ever point at Traefik.
"""

from __future__ import annotations

import json

import yaml

from ailab.stack.model import (
    Component,
    ConfigFile,
    Health,
    MetricsEndpoint,
    Port,
    RenderContext,
    SecretRef,
    SecretSpec,
    Volume,
)
from ailab.stack.public import checked_routes, sso_of, traefik_routes


def _traefik(ctx: RenderContext) -> list[ConfigFile]:
    routes = traefik_routes(ctx, checked_routes(ctx))
    return [ConfigFile("dynamic/routes.yml", "/etc/traefik/dynamic/routes.yml", yaml.safe_dump(routes))]


def _cloudflared(ctx: RenderContext) -> list[ConfigFile]:
    traefik = ctx.url_of("traefik", "web")
    cf = sso_of(ctx.lab_config).cloudflare_access
    # cloudflared checks the Access JWT itself too, before anything reaches Traefik (the lab checks again).
    origin = (
        {"originRequest": {"access": {"required": True, "teamName": cf.team, "audTag": [cf.audience]}}}
        if cf is not None
        else {}
    )
    ingress = [
        {"hostname": r.host, "service": traefik, **origin}
        for r in checked_routes(ctx)
        if r.via == "cloudflared"
    ]
    config = {"ingress": [*ingress, {"service": "http_status:404"}]}
    return [ConfigFile("config.yml", "/etc/cloudflared/config.yml", yaml.safe_dump(config))]


def _tailscale(ctx: RenderContext) -> list[ConfigFile]:
    host = "${TS_CERT_DOMAIN}:443"  # filled in by tailscale itself, not by compose
    serve = {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {host: {"Handlers": {"/": {"Proxy": ctx.url_of("traefik", "web")}}}},
        "AllowFunnel": {host: any(r.via == "tailscale" for r in checked_routes(ctx))},
    }
    return [ConfigFile("serve.json", "/config/serve.json", json.dumps(serve, indent=2))]


COMPONENTS = [
    Component(
        name="traefik",
        description="Traefik reverse proxy: the only door for public routes",
        image="traefik",
        tag="v3.3.4",
        phase=4,
        ports=(Port("web", 80, host=80), Port("admin", 8082)),
        command=(
            "--entrypoints.web.address=:80",
            "--entrypoints.admin.address=:8082",
            "--providers.file.directory=/etc/traefik/dynamic",
            "--ping=true",
            "--ping.entrypoint=admin",
            "--metrics.prometheus=true",
            "--metrics.prometheus.entrypoint=admin",
        ),
        health=Health(
            "admin", "/ping", ("CMD", "traefik", "healthcheck", "--ping", "--ping.entrypoint=admin")
        ),
        metrics=MetricsEndpoint("admin", "/metrics"),
        auth="none",
        files=_traefik,
    ),
    Component(
        name="cloudflared",
        description="Cloudflare Tunnel to Traefik (token: `ailab secrets set stack.CLOUDFLARE_TUNNEL_TOKEN`)",
        image="cloudflare/cloudflared",
        tag="2025.2.1",
        phase=4,
        ports=(Port("metrics", 2000),),
        command=(
            "tunnel",
            "--no-autoupdate",
            "--metrics",
            "0.0.0.0:2000",
            "--config",
            "/etc/cloudflared/config.yml",
            "run",
        ),
        env={"TUNNEL_TOKEN": SecretRef("CLOUDFLARE_TUNNEL_TOKEN")},
        secrets=(SecretSpec("CLOUDFLARE_TUNNEL_TOKEN", "user", "from the Cloudflare dashboard"),),
        health=Health("metrics", "/ready"),
        metrics=MetricsEndpoint("metrics", "/metrics"),
        depends_on=("traefik",),
        files=_cloudflared,
    ),
    Component(
        name="tailscale",
        description="Tailscale node with Funnel to Traefik (auth key: `ailab secrets set stack.TS_AUTHKEY`)",
        image="tailscale/tailscale",
        tag="v1.80.3",
        phase=4,
        volumes=(Volume("state", "/var/lib/tailscale", "100Mi"),),
        env={
            "TS_AUTHKEY": SecretRef("TS_AUTHKEY"),
            "TS_STATE_DIR": "/var/lib/tailscale",
            "TS_SERVE_CONFIG": "/config/serve.json",
            "TS_USERSPACE": "true",
            "TS_HOSTNAME": "ailab",
        },
        secrets=(SecretSpec("TS_AUTHKEY", "user", "a Tailscale auth key"),),
        depends_on=("traefik",),
        files=_tailscale,
    ),
]
