"""Signed JWTs checked against a provider's JWKS: an `alg` allow-list (never `none`, never HMAC), keys
cached by `kid`, and a refetch on an unknown `kid` (the provider rotated) at most once per `min_refresh`
seconds, so a flood of tokens with made-up key ids cannot make the lab hammer the provider."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ailab.config import ALLOWED_ALGS

Fetch = Callable[[str], dict[str, Any]]


class TokenRefused(Exception):
    """A JWT that is not signed by the expected party, or not meant for us (the message says why)."""


class Jwks:
    def __init__(self, url: str, fetch: Fetch, min_refresh: float = 60.0) -> None:
        self.url = url
        self._fetch = fetch
        self._min_refresh = min_refresh
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.fetches = 0  # how often the provider was asked (tests check the rate limit)

    def key(self, kid: str | None) -> Any:
        """The key named `kid` (any key when the token names none and the set holds one)."""
        with self._lock:
            found = self._find(kid)
            if found is None and time.monotonic() - self._fetched_at >= self._min_refresh:
                self._refetch()
                found = self._find(kid)
        if found is None:
            raise TokenRefused(f"signed with an unknown key (kid {str(kid)[:64]!r})")
        return found

    def _find(self, kid: str | None) -> Any:
        if self._keys is None:
            return None
        keys = self._keys.keys
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.kid == kid), None)

    def _refetch(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            data = self._fetch(self.url)
            # Only public signature keys are kept (an `oct` key in a JWKS would make HMAC forgeable).
            data = {"keys": [k for k in data.get("keys", []) if k.get("kty") in ("RSA", "EC", "OKP")]}
            self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (ValueError, JoseError, KeyError, TypeError) as exc:
            raise TokenRefused(f"the provider's keys ({self.url}) could not be read: {exc}") from None


def header_of(token: str) -> dict[str, Any]:
    try:
        head = token.split(".", 1)[0]
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise TokenRefused("not a JWT") from None
    if not isinstance(data, dict):
        raise TokenRefused("not a JWT")
    return data


def verify_jwt(
    token: str,
    jwks: Jwks,
    *,
    algorithms: list[str],
    issuer: str,
    audience: str,
    leeway: int = 60,
) -> dict[str, Any]:
    """The claims of `token` once its signature, `alg`, `iss`, `aud`, `exp` (and `nbf`, `iat`) check out."""
    if token.count(".") != 2:
        raise TokenRefused("not a compact JWS")
    header = header_of(token)
    alg = header.get("alg")
    if alg not in algorithms or alg not in ALLOWED_ALGS:
        raise TokenRefused(f"algorithm {str(alg)[:16]!r} is not allowed")
    key = jwks.key(header.get("kid"))
    try:
        claims = jwt.decode(token, key, algorithms=[str(alg)]).claims
        jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        ).validate(claims)
    except JoseError as exc:
        raise TokenRefused(_why(exc)) from None
    return claims


def _why(exc: JoseError) -> str:
    text = getattr(exc, "description", None) or exc.error or type(exc).__name__
    return str(text)[:200]
