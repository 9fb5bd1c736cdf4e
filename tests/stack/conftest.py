from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailab.stack.catalog import expand, select
from ailab.stack.compose import render_compose
from ailab.stack.helm import render_kubernetes
from ailab.stack.model import PublicRoute, RenderContext
from ailab.stack.render import Tree
from ailab.stack.secrets import generate, specs_for

SELECTIONS = ["phase1", "phase2", "phase3", "phase4", "all"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_secrets(ctx: RenderContext) -> dict[str, str]:
    return {k: generate(s.kind) for k, s in specs_for(ctx.components).items()}


# The identity layer every public route needs (docs/sso.md): Cloudflare Access in front of the tunnel.
ZERO_TRUST = {
    "access": {
        "sso": {"cloudflare_access": {"team_domain": "team.cloudflareaccess.com", "audience": "aud-tag"}}
    }
}


def context(selection: str, routes: tuple[PublicRoute, ...] = ()) -> RenderContext:
    return RenderContext(select(expand([selection])), routes=routes, lab_config=ZERO_TRUST if routes else {})


@pytest.fixture(scope="session", params=SELECTIONS)
def compose_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RenderContext, dict[str, str], Path]:
    ctx = context(
        request.param,
        (PublicRoute("grafana", "grafana.example.org", "cloudflared"),) if request.param == "all" else (),
    )
    secrets = fake_secrets(ctx)
    out = tmp_path_factory.mktemp(f"compose-{request.param}")
    render_compose(ctx, secrets, "nvidia").write(out)
    return ctx, secrets, out


@pytest.fixture(scope="session")
def k8s_all(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderContext, dict[str, str], Path, Tree]:
    ctx = context("all")
    secrets = fake_secrets(ctx)
    out = tmp_path_factory.mktemp("k8s")
    tree = render_kubernetes(ctx, secrets, "nvidia")
    tree.write(out)
    return ctx, secrets, out, tree


def load_compose(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((out / "docker-compose.yml").read_text())
    return data


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run `make test-deps` (Debian package prometheus)")
    return path
