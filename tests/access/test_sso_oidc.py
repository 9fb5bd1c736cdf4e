"""OpenID Connect sign-in against a real provider (npm oidc-provider) on loopback, driven without a browser:
the user is created with the mapped role, a changed group changes it at the next sign-in, tampered,
expired and wrong-audience ID tokens and replayed states and nonces are refused, the device flow issues a
key that works with the openai SDK, and a user disabled at the provider loses their session."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.access.sso_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    free_port,
    sign_in_at_provider,
    start_provider,
)
from tests.conftest import MASTER, UPSTREAM_KEY, model


@dataclass
class SsoLab:
    gw: Any
    provider: Provider

    @property
    def url(self) -> str:
        return str(self.gw.url)

    @property
    def sso(self) -> Any:
        return self.gw.app.state.sso.oidc

    @property
    def access(self) -> Any:
        return self.gw.app.state.access

    def audit(self, action: str) -> list[Any]:
        return [e for e in self.access.audit.entries(500, None, None) if e.action == action]

    def sign_in(self, login: str) -> tuple[httpx.Client, httpx.Response]:
        """A person signing in from the console's button: (their browser, the lab's answer to the callback)."""
        browser = httpx.Client(timeout=15)
        r = browser.get(f"{self.url}/auth/oidc/login", params={"next": "/console/"})
        assert r.status_code == 302, r.text
        back = sign_in_at_provider(browser, r, login, self.url)
        return browser, browser.get(back.headers["location"])

    def me(self, browser: httpx.Client) -> httpx.Response:
        return browser.get(f"{self.url}/api/me")


def csrf(lab: SsoLab, browser: httpx.Client) -> str:
    """The session's CSRF token, as the console pages carry it."""
    from ailab.access.sessions import COOKIE

    session = lab.access.sessions.resolve(browser.cookies[COOKIE])
    assert session is not None
    return str(session.csrf_token)


@pytest.fixture
def make_sso_lab(openai_upstream: Any, make_gateway: Any) -> Iterator[Callable[..., SsoLab]]:
    providers: list[Provider] = []

    def make(**oidc: Any) -> SsoLab:
        port = free_port()
        settings = {
            "issuer": f"http://127.0.0.1:{port}",
            "client_id": CLIENT_ID,
            "client_secret": "secret/OIDC_CLIENT_SECRET",
            "name": "Test IdP",
            "scopes": ["openid", "email", "profile", "groups", "offline_access"],
            "group_roles": {"lab-admins": "admin", "lab-analysts": "analyst"},
            "group_projects": {"team-a": ["alpha"], "team-b": ["beta"]},
            "allowed_email_domains": ["example.org"],
            **oidc,
        }
        gw = make_gateway(
            {
                "model_list": [
                    model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
                ],
                "access": {"sso": {"oidc": settings}},
            }
        )
        gw.app.state.secret_store("test").set("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        provider = start_provider(port, f"{gw.url}/auth/oidc/callback")
        providers.append(provider)
        return SsoLab(gw, provider)

    yield make
    for p in providers:
        p.stop()


def test_first_sign_in_creates_the_user_and_groups_map_on_every_sign_in(make_sso_lab: Any) -> None:
    lab = make_sso_lab()
    lab.provider.account("alice", email="alice@example.org", groups=["lab-analysts", "team-a"])
    browser, r = lab.sign_in("alice")
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    me = lab.me(browser).json()
    assert me["role"] == "analyst"
    user = lab.access.identity.user("alice@example.org")
    assert user.password_hash is None  # signs in through the provider only
    alpha = lab.access.identity.project("alpha").id
    assert me["projects"] == [alpha]
    assert [e.target for e in lab.audit("sso.login")] == [user.id]

    # Moved from analysts to admins and from team-a to team-b: the next sign-in says so.
    lab.provider.account("alice", groups=["lab-admins", "team-b"])
    browser2, r = lab.sign_in("alice")
    assert r.status_code == 303
    me = lab.me(browser2).json()
    assert me["role"] == "admin"
    assert me["projects"] == [lab.access.identity.project("beta").id]
    assert len(lab.access.identity.users()) == 1  # the same user, not a second one
    roles = [e.detail["role"] for e in lab.audit("sso.mapping_change") if "role" in e.detail]
    assert roles == [["analyst", "admin"]]

    # Out of every mapped group: the default role, and no mapped project.
    lab.provider.account("alice", groups=[])
    browser3, _ = lab.sign_in("alice")
    assert lab.me(browser3).json()["role"] == "user"
    assert lab.me(browser3).json()["projects"] == []


@pytest.mark.parametrize("mode", ["sig", "aud", "exp", "none"])
def test_a_spoiled_id_token_is_refused(make_sso_lab: Any, mode: str) -> None:
    lab = make_sso_lab()
    lab.provider.account("eve", email="eve@example.org", groups=["lab-admins"])
    lab.provider.tamper(mode)
    browser, r = lab.sign_in("eve")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "sso_refused"
    assert "ailab_session" not in browser.cookies
    assert lab.access.identity.users() == []
    refused = lab.audit("sso.refused")
    assert len(refused) == 1 and "refused" in refused[0].detail["reason"]


def test_state_and_nonce_are_single_use(make_sso_lab: Any) -> None:
    lab = make_sso_lab()
    lab.provider.account("bob", email="bob@example.org")
    browser = httpx.Client(timeout=15)
    r = browser.get(f"{lab.url}/auth/oidc/login")
    callback = sign_in_at_provider(browser, r, "bob", lab.url).headers["location"]
    assert browser.get(callback).status_code == 303
    # The same callback again (state and code replayed): refused by the lab before the provider is asked.
    again = httpx.get(callback, timeout=15)
    assert again.status_code == 401 and "already used" in again.json()["error"]["message"]
    # A new sign-in handed the previous ID token (its nonce belongs to the first sign-in): refused.
    lab.provider.tamper("replay")
    _, r = lab.sign_in("bob")
    assert r.status_code == 401 and "nonce" in r.json()["error"]["message"]
    # A state the lab never issued.
    forged = httpx.get(f"{lab.url}/auth/oidc/callback", params={"state": "made-up", "code": "x"}, timeout=15)
    assert forged.status_code == 401


def test_email_domain_and_local_passwords(make_sso_lab: Any) -> None:
    lab = make_sso_lab(local_passwords=False)
    lab.provider.account("mallory", email="mallory@elsewhere.test", groups=["lab-admins"])
    _, r = lab.sign_in("mallory")
    assert r.status_code == 401 and "elsewhere.test" in r.json()["error"]["message"]
    assert lab.access.identity.users() == []
    # An address the provider has not verified never names a lab user (it could be anyone's).
    lab.provider.account("mallory", email="admin@example.org", email_verified=False)
    _, r = lab.sign_in("mallory")
    assert r.status_code == 401 and "not verified" in r.json()["error"]["message"]
    assert lab.access.identity.users() == []
    # Passwords are off: even a local user with one cannot use it; the master key still works.
    lab.access.identity.create_user("test", "local", "admin", "correct-horse-battery")
    r = httpx.post(
        f"{lab.url}/api/auth/login", json={"username": "local", "password": "correct-horse-battery"}
    )
    assert r.status_code == 401 and "Test IdP" in r.json()["error"]["message"]
    page = httpx.get(f"{lab.url}/console/login", timeout=15).text
    assert "Sign in with Test IdP" in page and 'name="password"' not in page
    offered = httpx.get(f"{lab.url}/api/auth/providers").json()
    assert offered["local_passwords"] is False and offered["oidc"]["name"] == "Test IdP"
    assert httpx.get(f"{lab.url}/api/me", headers={"Authorization": f"Bearer {MASTER}"}).status_code == 200


def test_a_user_disabled_at_the_provider_loses_the_session(make_sso_lab: Any) -> None:
    lab = make_sso_lab()
    lab.provider.account("carol", email="carol@example.org")
    lab.provider.account("dave", email="dave@example.org")
    carol, _ = lab.sign_in("carol")
    dave, _ = lab.sign_in("dave")
    lab.provider.account("carol", disabled=True)
    lab.sso.store.due_now()
    assert lab.sso.check_sessions() == 1
    assert lab.me(carol).status_code == 401
    assert lab.me(dave).status_code == 200  # the provider still vouches for dave
    assert [e.target for e in lab.audit("sso.session_ended")] == [
        lab.access.identity.user("carol@example.org").id
    ]
    # Signed out: the lab stops asking the provider about that session.
    assert (
        dave.post(f"{lab.url}/api/auth/logout", headers={"x-csrf-token": csrf(lab, dave)}).status_code == 200
    )
    lab.sso.store.due_now()
    assert lab.sso.check_sessions() == 0
    assert lab.sso.store.sessions() == []


def test_device_flow_issues_a_working_key(make_sso_lab: Any) -> None:
    lab = make_sso_lab()
    lab.provider.account("erin", email="erin@example.org", groups=["lab-analysts"])
    start = httpx.post(f"{lab.url}/api/auth/oidc/device", timeout=15)
    assert start.status_code == 200, start.text
    start = start.json()
    assert start["user_code"] and start["verification_uri"].startswith(lab.provider.issuer)
    pending = httpx.post(f"{lab.url}/api/auth/oidc/device/token", json={"device_code": start["device_code"]})
    assert pending.status_code == 400 and pending.json()["error"]["code"] == "authorization_pending"

    browser = httpx.Client(timeout=15)
    sign_in_at_provider(browser, browser.get(start["verification_uri_complete"]), "erin", None)
    got = httpx.post(f"{lab.url}/api/auth/oidc/device/token", json={"device_code": start["device_code"]})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["user"]["role"] == "analyst" and body["expires_ms"]
    lab.gw.app.state.access.cache.load()
    client = openai.OpenAI(base_url=lab.gw.base_url, api_key=body["key"])
    assert [m.id for m in client.models.list()] == ["gpt"]
    # The device code is spent.
    again = httpx.post(f"{lab.url}/api/auth/oidc/device/token", json={"device_code": start["device_code"]})
    assert again.status_code == 401


def test_ailab_login_saves_a_short_lived_key(make_sso_lab: Any) -> None:
    """The CLI's device flow: the code is shown, a person approves it at the provider, the key lands 0600."""
    from ailab.cli.login_cmd import credentials_path, device_login, save_credentials

    lab = make_sso_lab()
    lab.provider.account("frank", email="frank@example.org", groups=["lab-admins"])
    shown: list[dict[str, Any]] = []
    browser = httpx.Client(timeout=15)

    def approve_once(_: float) -> None:  # instead of waiting: the person approves during the first wait
        if len(shown) == 1:
            sign_in_at_provider(browser, browser.get(shown[0]["verification_uri_complete"]), "frank", None)
            shown.append({})

    answer = device_login(lab.url, shown.append, sleep=approve_once)
    assert answer["user"]["username"] == "frank@example.org" and answer["user"]["role"] == "admin"
    path = save_credentials(lab.url, answer)
    assert path == credentials_path() and path.stat().st_mode & 0o777 == 0o600
    lab.gw.app.state.access.cache.load()
    key = json.loads(path.read_text())[lab.url]["key"]
    assert openai.OpenAI(base_url=lab.gw.base_url, api_key=key).models.list().data[0].id == "gpt"
    logins = [e for e in lab.audit("sso.login") if e.detail.get("via") == "device"]
    assert len(logins) == 1
