"""Zero-trust behind a tunnel: Cloudflare Access JWTs signed by a test key served from a loopback certs
endpoint (as `https://<team>.cloudflareaccess.com/cdn-cgi/access/certs` would), and Tailscale's user
header believed only from the local tailscaled proxy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.upstreams.harness import ServerThread

TEAM = "myteam.cloudflareaccess.com"
AUD = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"


@dataclass
class Certs:
    """The team's certs endpoint: the keys it serves can be rotated; requests are counted."""

    keys: list[RSAKey] = field(default_factory=list)
    hits: int = 0

    def app(self) -> Starlette:
        async def certs(_: Request) -> JSONResponse:
            self.hits += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

        return Starlette(routes=[Route("/cdn-cgi/access/certs", certs)])


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


def assertion(key: RSAKey, **over: Any) -> str:
    now = int(time.time())
    claims = {
        "aud": [AUD],
        "email": "ana@example.org",
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "iss": f"https://{TEAM}",
        "type": "app",
        "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
        **over,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid or ""}, claims, key)


def hs256_with_public_key(key: RSAKey) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    now = int(time.time())
    body = b64(
        json.dumps(
            {"aud": [AUD], "iss": f"https://{TEAM}", "email": "ana@example.org", "exp": now + 60}
        ).encode()
    )
    mac = hmac.new(key.as_pem(private=False), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.fixture
def certs() -> Iterator[tuple[Certs, str]]:
    c = Certs([new_key("k1")])
    server = ServerThread(c.app()).start()
    yield c, f"{server.url}/cdn-cgi/access/certs"
    server.stop()


@pytest.fixture
def lab(make_gateway: Any, certs: tuple[Certs, str]) -> Any:
    _, url = certs
    gw = make_gateway(
        {
            "access": {
                "sso": {
                    "cloudflare_access": {
                        "team_domain": TEAM,
                        "audience": AUD,
                        "certs_url": url,
                        "jwks_min_refresh_seconds": 3600,
                    }
                }
            }
        }
    )
    gw.app.state.access.identity.create_user("test", "ana@example.org", "analyst")
    return gw


def me(gw: Any, token: str | None, method: str = "GET") -> httpx.Response:
    headers = {"Cf-Access-Jwt-Assertion": token} if token is not None else {}
    return httpx.request(method, f"{gw.url}/api/me", headers=headers, timeout=10)


def test_a_valid_access_jwt_signs_the_user_in(lab: Any, certs: tuple[Certs, str]) -> None:
    c, _ = certs
    r = me(lab, assertion(c.keys[0]))
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "analyst"
    assert me(lab, None).status_code == 401  # no header, no key, no session
    # The console turns it into a session (cookie + CSRF), like a password sign-in.
    r = httpx.get(
        f"{lab.url}/console/login",
        params={"next": "/console/usage"},
        headers={"Cf-Access-Jwt-Assertion": assertion(c.keys[0])},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/usage"
    assert "ailab_session" in r.cookies
    # A change through the header alone (a cross-site request carries it too) needs a session or a key.
    r = httpx.post(f"{lab.url}/api/keys", json={}, headers={"Cf-Access-Jwt-Assertion": assertion(c.keys[0])})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "spoil",
    ["wrong_audience", "expired", "unsigned", "other_key", "wrong_issuer", "unknown_user", "hs256"],
)
def test_a_bad_access_jwt_is_401(lab: Any, certs: tuple[Certs, str], spoil: str) -> None:
    c, _ = certs
    key = c.keys[0]
    if spoil == "wrong_audience":
        token = assertion(key, aud=["another-application"])
    elif spoil == "expired":
        token = assertion(key, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    elif spoil == "unsigned":
        _, body, _ = assertion(key).split(".")
        token = f"eyJhbGciOiJub25lIn0.{body}."
    elif spoil == "other_key":  # same kid, another private key
        token = assertion(new_key("k1"))
    elif spoil == "wrong_issuer":
        token = assertion(key, iss="https://evil.cloudflareaccess.com")
    elif spoil == "unknown_user":
        token = assertion(key, email="stranger@example.org")
    else:  # the public key as an HMAC secret: the classic RS256 -> HS256 confusion (made by hand)
        token = hs256_with_public_key(key)
    r = me(lab, token)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_tunnel_identity"


def test_keys_rotate_and_unknown_kids_are_rate_limited(lab: Any, certs: tuple[Certs, str]) -> None:
    c, _ = certs
    old = c.keys[0]
    assert me(lab, assertion(old)).status_code == 200
    assert c.hits == 1
    assert me(lab, assertion(old)).status_code == 200
    assert c.hits == 1  # cached: a known kid needs no fetch
    # Cloudflare rotates; once the refetch interval has passed, the first token naming the new key
    # fetches the certs again.
    rotated = new_key("k2")
    c.keys = [rotated, old]
    lab.app.state.sso.tunnel.cf_jwks._fetched_at = float("-inf")
    assert me(lab, assertion(rotated)).status_code == 200
    assert c.hits == 2
    # A flood of made-up key ids within the interval asks the certs endpoint nothing more.
    for i in range(5):
        assert me(lab, assertion(new_key(f"bogus-{i}"))).status_code == 401
    assert c.hits == 2
    assert me(lab, assertion(old)).status_code == 200  # both keys stay good during the rotation


def test_tailscale_user_header_only_from_the_local_tailscaled(make_gateway: Any) -> None:
    header = {"Tailscale-User-Login": "ana@example.org"}
    trusted = make_gateway({"access": {"sso": {"tailscale": {"trust_user_header": True}}}})
    trusted.app.state.access.identity.create_user("test", "ana@example.org", "user")
    assert httpx.get(f"{trusted.url}/api/me", headers=header).json()["role"] == "user"
    # tailscaled is configured elsewhere: the same header from this (loopback) peer is just a header.
    other = make_gateway(
        {"access": {"sso": {"tailscale": {"trust_user_header": True, "proxies": ["100.64.0.1"]}}}}
    )
    other.app.state.access.identity.create_user("test", "ana@example.org", "user")
    assert httpx.get(f"{other.url}/api/me", headers=header).status_code == 401
    # Not switched on: ignored.
    off = make_gateway({})
    off.app.state.access.identity.create_user("test", "ana@example.org", "user")
    assert httpx.get(f"{off.url}/api/me", headers=header).status_code == 401
