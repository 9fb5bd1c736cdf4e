"""Acceptance: the public-access guard refuses an unauthenticated route, with a clear message."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from ailab.cli.main import app
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
    assert tunnel["ingress"][0] == {"hostname": "chat.example.org", "service": "http://traefik:80"}


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
