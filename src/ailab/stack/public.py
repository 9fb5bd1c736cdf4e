"""Public access that cannot be unsafe: a route renders only to a component with a login in front of it.

Every public hostname (Traefik directly, or through a Cloudflare Tunnel / Tailscale Funnel, which point at
Traefik) is checked here, at `ailab expose` time and again at render time, so a hand-edited state file
cannot slip an open Prometheus onto the internet either.

Zero-trust: a login of its own is not enough. Every route also needs an identity layer of the lab's
`access.sso` in front (docs/sso.md): Cloudflare Access for a route through the tunnel, Tailscale's
verified user for one through Tailscale, or the lab's OpenID Connect sign-in for the lab itself.
"""

from __future__ import annotations

import re
from typing import Any

from ailab.config import SsoSettings
from ailab.stack.model import Component, PublicRoute, RenderContext

HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class PublicAccessError(ValueError):
    """A route that would expose something without authentication (or is malformed)."""


def sso_of(lab_config: dict[str, Any]) -> SsoSettings:
    """The identity layers a lab config declares (none when absent or malformed: the guard then refuses)."""
    raw = (lab_config.get("access") or {}).get("sso") or {}
    try:
        return SsoSettings.model_validate(raw)
    except ValueError:
        return SsoSettings()


def identity_layer(route: PublicRoute, sso: SsoSettings) -> str | None:
    """The identity layer that vouches for every visitor of `route`, or None."""
    if route.via == "cloudflared" and sso.cloudflare_access is not None:
        return "cloudflare_access"
    if route.via == "tailscale" and sso.tailscale.trust_user_header:
        return "tailscale"
    if route.component == "ailab" and sso.oidc is not None:
        return "oidc"
    return None


def check_route(route: PublicRoute, components: dict[str, Component], sso: SsoSettings | None = None) -> None:
    comp = components.get(route.component)
    if comp is None:
        raise PublicAccessError(f"cannot publish {route.component}: it is not part of the stack")
    if not HOST_RE.fullmatch(route.host):
        raise PublicAccessError(f"cannot publish {route.component}: {route.host!r} is not a DNS hostname")
    if not any(p.name in ("http", "web") for p in comp.ports):
        raise PublicAccessError(f"cannot publish {route.component}: it has no HTTP port")
    if comp.auth == "none":
        raise PublicAccessError(
            f"refusing to publish {route.component} at https://{route.host}: {route.component} has no "
            "authentication in front of it (neither the lab's nor its own login), so anyone on the "
            "internet could use it. Keep it private (reach it over the compose network, a VPN or an "
            "SSH tunnel), or publish a component that has a login (ailab, open-webui, grafana, dify, "
            "n8n, jupyter, code-server)."
        )
    if identity_layer(route, sso or SsoSettings()) is None:
        raise PublicAccessError(
            f"refusing to publish {route.component} at https://{route.host} via {route.via}: no identity "
            "layer is in front of it. Configure one in ailab.yaml under access.sso (docs/sso.md): "
            "cloudflare_access (team_domain, audience) and publish --via cloudflared, "
            "tailscale.trust_user_header and --via tailscale, or (for the lab itself) oidc."
        )


def checked_routes(ctx: RenderContext) -> list[PublicRoute]:
    sso = sso_of(ctx.lab_config)
    for route in ctx.routes:
        check_route(route, ctx.components, sso)
    return list(ctx.routes)


def traefik_routes(ctx: RenderContext, routes: list[PublicRoute]) -> dict[str, Any]:
    """Traefik's file-provider config: one router and one service per public hostname."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for route in routes:
        name = f"{route.component}-{route.host.replace('.', '-')}"
        routers[name] = {"rule": f"Host(`{route.host}`)", "service": name, "entryPoints": ["web"]}
        port = "http" if any(p.name == "http" for p in ctx.components[route.component].ports) else "web"
        services[name] = {"loadBalancer": {"servers": [{"url": ctx.url_of(route.component, port)}]}}
    if not routers:
        # Traefik rejects empty sections; a file with no routes is still a valid (empty) config.
        return {"http": {"middlewares": {"noop": {"headers": {"customResponseHeaders": {}}}}}}
    return {"http": {"routers": routers, "services": services}}
