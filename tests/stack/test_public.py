"""Acceptance: the public-access guard refuses an unauthenticated route, with a clear message."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from ailab.cli.main import app
from ailab.config.sso import SsoSettings
from ailab.stack.catalog import catalog
from ailab.stack.compose import render_compose
from ailab.stack.model import PublicRoute
from ailab.stack.public import PublicAccessError, check_route
from tests.stack.conftest import context, fake_secrets


@pytest.mark.parametrize("name", ["prometheus", "node-red", "ollama", "milvus", "alertmanager"])
def test_guard_refuses_components_without_auth(name: str) -> None:
    with pytest.raises(
        PublicAccessError,
        match=rf"refusing to publish {name} at https://x\.example\.org: .*no authentication",
    ):
        check_route(PublicRoute(name, "x.example.org", "cloudflared"), catalog())


def test_guard_allows_components_with_a_login_and_renders_the_route() -> None:
    ctx = context("all", (PublicRoute("open-webui", "chat.example.org", "cloudflared"),))
    tree = render_compose(ctx, fake_secrets(ctx))
    routes = yaml.safe_load(tree.files["config/traefik/dynamic/routes.yml"][0])
    router = next(iter(routes["http"]["routers"].values()))
    assert router["rule"] == "Host(`chat.example.org`)"
    tunnel = yaml.safe_load(tree.files["config/cloudflared/config.yml"][0])
    assert tunnel["ingress"][0] == {
        "hostname": "chat.example.org",
        "service": "http://traefik:80",
        # cloudflared checks the Access JWT too (access.sso.cloudflare_access, docs/sso.md)
        "originRequest": {"access": {"required": True, "teamName": "team", "audTag": ["aud-tag"]}},
    }


def test_render_refuses_a_route_slipped_into_state() -> None:
    ctx = context("all", (PublicRoute("prometheus", "prom.example.org"),))
    with pytest.raises(PublicAccessError, match="no authentication"):
        render_compose(ctx, fake_secrets(ctx))


def test_cli_expose_refuses_with_a_clear_message(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["expose", "prometheus", "--host", "prom.example.org", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "refusing to publish prometheus" in result.output and "Keep it private" in result.output


@pytest.mark.parametrize("via", ["traefik", "cloudflared", "tailscale"])
def test_guard_refuses_a_route_without_an_identity_layer(via: str) -> None:
    """Zero-trust: a component's own login is not enough; one of access.sso's layers must be in front."""
    route = PublicRoute("open-webui", "chat.example.org", via)  # type: ignore[arg-type]
    with pytest.raises(PublicAccessError, match="no identity layer"):
        check_route(route, catalog(), SsoSettings())
    layers = {
        "cloudflared": {"cloudflare_access": {"team_domain": "t.cloudflareaccess.com", "audience": "a"}},
        "tailscale": {"tailscale": {"trust_user_header": True}},
        "traefik": {"oidc": {"issuer": "https://idp.example.org", "client_id": "lab"}},
    }
    sso = SsoSettings.model_validate(layers[via])
    if via == "traefik":  # the lab's own sign-in vouches only for the lab
        with pytest.raises(PublicAccessError, match="no identity layer"):
            check_route(route, catalog(), sso)
        check_route(PublicRoute("ailab", "lab.example.org", "traefik"), catalog(), sso)
    else:
        check_route(route, catalog(), sso)
