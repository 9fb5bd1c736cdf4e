"""The OpenID Connect relying party: discovery, Authorization Code + PKCE, the device flow, refresh.

Authlib speaks OAuth 2 (PKCE, client authentication, token requests); the ID token is checked here with
joserfc against the provider's JWKS (`jwks.py`): signature, `alg` allow-list, `iss`, `aud` (and `azp`),
`exp`, and the `nonce` of the sign-in that asked for it.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from ailab.access.sso.jwks import Jwks, TokenRefused, verify_jwt
from ailab.config import OidcSettings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10.0


class ProviderError(Exception):
    """The provider could not be reached or answered with an error (the message is safe to show)."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class ProviderSaysNo(ProviderError):
    """The provider refused a refresh or userinfo: the user is gone or disabled there."""


@dataclass(frozen=True)
class SignIn:
    claims: dict[str, Any]  # ID token claims merged with userinfo (same `sub`)
    refresh_token: str | None


def _fetch_json(url: str) -> dict[str, Any]:
    r = httpx.get(url, timeout=TIMEOUT, follow_redirects=False)
    r.raise_for_status()
    data = r.json()
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


class OidcClient:
    def __init__(self, settings: OidcSettings, client_secret: str | None) -> None:
        self.settings = settings
        self._secret = client_secret
        self._meta: dict[str, Any] | None = None
        self._jwks: Jwks | None = None
        self._lock = threading.Lock()

    # -- discovery ---------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None:
                url = self.settings.issuer + "/.well-known/openid-configuration"
                try:
                    meta = _fetch_json(url)
                except (httpx.HTTPError, ValueError) as exc:
                    raise ProviderError(f"the provider's discovery document ({url}) failed: {exc}") from None
                if meta.get("issuer", "").rstrip("/") != self.settings.issuer:
                    raise ProviderError(f"the discovery document names issuer {meta.get('issuer')!r}")
                self._meta = meta
                self._jwks = Jwks(meta["jwks_uri"], _fetch_json, self.settings.jwks_min_refresh_seconds)
            return self._meta

    @property
    def issuer(self) -> str:
        return str(self.metadata()["issuer"])

    def _client(self, **kw: Any) -> OAuth2Client:
        kw.setdefault("scope", " ".join(self.settings.scopes))
        return OAuth2Client(self.settings.client_id, self._secret, timeout=TIMEOUT, **kw)

    # -- authorization code + PKCE -----------------------------------------------------------------

    def authorization_url(self, redirect_uri: str) -> tuple[str, str, str, str]:
        """(url, state, nonce, code_verifier): the caller keeps the last three, single-use."""
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        with self._client(redirect_uri=redirect_uri, code_challenge_method="S256") as c:
            url, _ = c.create_authorization_url(
                self.metadata()["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
            )
        return url, state, nonce, verifier

    def exchange(self, code: str, verifier: str, redirect_uri: str, nonce: str) -> SignIn:
        with self._client(redirect_uri=redirect_uri) as c:
            try:
                token = c.fetch_token(
                    self.metadata()["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    redirect_uri=redirect_uri,
                )
            except (OAuthError, httpx.HTTPError) as exc:
                raise ProviderError(f"the code exchange failed: {_oauth_why(exc)}") from None
        return self._sign_in(dict(token), nonce)

    def _sign_in(self, token: dict[str, Any], nonce: str | None) -> SignIn:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise TokenRefused("the provider sent no ID token (is `openid` in scopes?)")
        claims = self.verify_id_token(id_token, nonce)
        access = token.get("access_token")
        if isinstance(access, str) and self.metadata().get("userinfo_endpoint"):
            info = self.userinfo(access)
            if info.get("sub") != claims["sub"]:
                raise TokenRefused("userinfo is about another subject than the ID token")
            claims = {**info, **{k: v for k, v in claims.items() if k not in info or k in _PROTECTED}}
        return SignIn(claims, token.get("refresh_token"))

    def verify_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        self.metadata()
        assert self._jwks is not None
        claims = verify_jwt(
            id_token,
            self._jwks,
            algorithms=self.settings.algorithms,
            issuer=self.issuer,
            audience=self.settings.client_id,
            leeway=self.settings.leeway_seconds,
        )
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.settings.client_id:
            raise TokenRefused("the ID token has several audiences and we are not its authorized party")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRefused("the ID token has no subject")
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise TokenRefused("the ID token's nonce is not the one this sign-in sent (a replay?)")
        return claims

    def userinfo(self, access_token: str) -> dict[str, Any]:
        url = self.metadata()["userinfo_endpoint"]
        try:
            r = httpx.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise ProviderError(f"userinfo failed: {exc}") from None
        if r.status_code in (401, 403):
            raise ProviderSaysNo(f"userinfo refused the user ({r.status_code})", "invalid_token")
        if r.status_code != 200:
            raise ProviderError(f"userinfo answered {r.status_code}")
        data = r.json()
        if not isinstance(data, dict):
            raise ProviderError("userinfo did not answer a JSON object")
        return data

    # -- refresh (does the provider still know this user?) -----------------------------------------

    def refresh(self, refresh_token: str) -> SignIn:
        # No `scope`: a refresh keeps what was granted (asking again for an ungranted scope is an error).
        with self._client(scope=None) as c:
            try:
                token = c.refresh_token(self.metadata()["token_endpoint"], refresh_token=refresh_token)
            except OAuthError as exc:
                if exc.error in ("invalid_grant", "unauthorized_client", "access_denied"):
                    why = f"the provider refused the refresh: {_oauth_why(exc)}"
                    raise ProviderSaysNo(why, exc.error) from None
                raise ProviderError(f"refresh failed: {_oauth_why(exc)}") from None
            except httpx.HTTPError as exc:
                raise ProviderError(f"refresh failed: {exc}") from None
        token = dict(token)
        if "id_token" not in token:  # providers need not send a new ID token on refresh
            access = token.get("access_token")
            info = self.userinfo(str(access)) if access and self.metadata().get("userinfo_endpoint") else {}
            return SignIn(info, token.get("refresh_token"))
        return self._sign_in(token, None)

    # -- device authorization (RFC 8628), relayed for `ailab login` ------------------------------

    def device_start(self) -> dict[str, Any]:
        endpoint = self.metadata().get("device_authorization_endpoint")
        if not endpoint:
            raise ProviderError(
                "the provider does not offer the device flow (no device_authorization_endpoint)"
            )
        auth = (self.settings.client_id, self._secret) if self._secret else None
        form = {"client_id": self.settings.client_id, "scope": " ".join(self.settings.scopes)}
        try:
            r = httpx.post(endpoint, data=form, auth=auth, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise ProviderError(f"the device authorization request failed: {exc}") from None
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200 or "device_code" not in data:
            raise ProviderError(
                f"the device authorization request failed: {data.get('error', r.status_code)}"
            )
        return dict(data)

    def device_poll(self, device_code: str) -> SignIn:
        """Raises ProviderError with `error` authorization_pending / slow_down while the user has not
        finished, expired_token / access_denied when it never will."""
        with self._client() as c:
            try:
                token = c.fetch_token(
                    self.metadata()["token_endpoint"], grant_type=DEVICE_GRANT, device_code=device_code
                )
            except OAuthError as exc:
                raise ProviderError(_oauth_why(exc), exc.error) from None
            except httpx.HTTPError as exc:
                raise ProviderError(f"the device token request failed: {exc}") from None
        return self._sign_in(dict(token), None)


_PROTECTED = frozenset({"iss", "aud", "exp", "iat", "nonce", "sub", "azp", "auth_time"})


def _oauth_why(exc: Exception) -> str:
    if isinstance(exc, OAuthError):
        return f"{exc.error}: {exc.description}"[:300] if exc.description else str(exc.error)[:300]
    return str(exc)[:300]
