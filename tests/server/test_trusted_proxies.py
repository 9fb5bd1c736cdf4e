"""Client addresses and HTTPS are believed only from `ailab.trusted_proxies`: rotating X-Forwarded-For does not
escape the login throttle nor forge the audit actor; behind a trusted TLS proxy the session cookie is Secure;
the per-user throttle counts a user's failures however the user is named."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from ailab.access.proxies import proxy_options
from ailab.config import load_config
from ailab.server.app import create_app
from tests.upstreams.harness import free_port

PASSWORD = "correct-horse-battery"


@contextmanager
def lab(tmp_path, **ailab: Any) -> Iterator[tuple[str, Any]]:
    """A lab served by uvicorn with the options `ailab up` gives it."""
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump({"ailab": {"discover_ollama": False, **ailab}}))
    loaded = load_config(path, tmp_path / "data")
    app = create_app(loaded)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", **proxy_options(loaded.config.ailab)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app.state
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _fail(url: str, username: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = {"username": username, "password": "wrong-password-x"}
    return httpx.post(f"{url}/api/auth/login", json=body, headers=headers).status_code


def test_forwarded_for_is_ignored_without_trusted_proxies(tmp_path):
    with lab(tmp_path) as (url, state):
        codes = [_fail(url, f"nobody{i}", f"203.0.113.{i}") for i in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429  # one client, however it names itself
        actors = {e.actor for e in state.access.audit.entries(action="auth.login_failed")}
        assert actors == {"client:127.0.0.1"}


def test_a_trusted_proxy_is_believed_and_tls_makes_the_cookie_secure(tmp_path):
    with lab(tmp_path, trusted_proxies=["127.0.0.0/8"]) as (url, state):
        state.access.identity.create_user("test", "alice", "user", PASSWORD)
        assert _fail(url, "nobody", "203.0.113.7") == 401
        assert {e.actor for e in state.access.audit.entries(action="auth.login_failed")} == {
            "client:203.0.113.7"
        }
        body = {"username": "alice", "password": PASSWORD}
        tls = httpx.post(f"{url}/api/auth/login", json=body, headers={"X-Forwarded-Proto": "https"})
        assert tls.status_code == 200 and "secure" in tls.headers["set-cookie"].lower()
        plain = httpx.post(f"{url}/api/auth/login", json=body)
        assert plain.status_code == 200 and "secure" not in plain.headers["set-cookie"].lower()


def test_an_untrusted_peer_cannot_claim_https(tmp_path):
    with lab(tmp_path) as (url, state):
        state.access.identity.create_user("test", "alice", "user", PASSWORD)
        r = httpx.post(
            f"{url}/api/auth/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()


def test_the_per_user_throttle_counts_name_and_id_together(tmp_path):
    with lab(tmp_path, trusted_proxies=["127.0.0.1"]) as (url, state):
        uid = state.access.identity.create_user("test", "alice", "user", PASSWORD).id
        # a different (forwarded) client each time, so only the per-user count can stop it
        codes = [_fail(url, name, f"198.51.100.{i}") for i, name in enumerate(["alice", uid] * 3)]
        assert codes[:5] == [401] * 5 and codes[5] == 429


def test_up_passes_the_trusted_proxies_to_uvicorn(tmp_path, monkeypatch):
    from ailab.cli import up_cmd

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    path = tmp_path / "ailab.yaml"
    for trusted, expect in (
        ([], (False, "")),
        (["10.0.0.5", "192.168.0.0/16"], (True, "10.0.0.5,192.168.0.0/16")),
    ):
        path.write_text(yaml.safe_dump({"ailab": {"trusted_proxies": trusted}}))
        up_cmd._serve(load_config(path, tmp_path / "data"), "127.0.0.1", free_port(), 1, "critical")
        assert (seen["proxy_headers"], seen["forwarded_allow_ips"]) == expect


def test_a_bad_proxy_address_is_refused(tmp_path):
    from ailab.config.loader import ConfigError

    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump({"ailab": {"trusted_proxies": ["not-an-ip"]}}))
    with pytest.raises((ConfigError, ValueError), match="not-an-ip"):
        load_config(path, tmp_path / "data")
