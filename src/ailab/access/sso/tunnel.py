"""Identity from the tunnel in front of the lab.

- Cloudflare Access puts a signed JWT in `Cf-Access-Jwt-Assertion` on every request it lets through: checked
  against the team's certs (RS256), issuer `https://<team domain>`, the application's AUD tag, expiry.
- Tailscale Serve/Funnel adds `Tailscale-User-Login`; anyone can send that header, so it is believed only
  when switched on and when the TCP peer is the local tailscaled proxy (loopback by default).

Either maps the email to an existing lab user (a tunnel proves who someone is, not what they may do here).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ailab.access.records import NotFound, User
from ailab.access.service import AccessService
from ailab.access.sso.jwks import Jwks, TokenRefused, verify_jwt
from ailab.access.sso.oidc import _fetch_json
from ailab.config import SsoSettings

CF_HEADER = "cf-access-jwt-assertion"
TS_HEADER = "tailscale-user-login"


class TunnelRefused(Exception):
    """An identity header was present but does not hold (401, with this message)."""


@dataclass(frozen=True)
class TunnelUser:
    user: User
    via: str  # cloudflare_access | tailscale
    email: str


class TunnelIdentity:
    def __init__(self, access: AccessService, settings: SsoSettings) -> None:
        self.access = access
        self.settings = settings
        cf = settings.cloudflare_access
        self.cf_jwks = Jwks(cf.certs, _fetch_json, cf.jwks_min_refresh_seconds) if cf else None

    @property
    def enabled(self) -> bool:
        return self.cf_jwks is not None or self.settings.tailscale.trust_user_header

    def identify(self, headers: dict[str, str], peer: str | None) -> TunnelUser | None:
        """The user a tunnel vouches for; None when no identity header applies. Raises TunnelRefused."""
        assertion = headers.get(CF_HEADER)
        if self.cf_jwks is not None and assertion:
            return self._user(self._cloudflare_email(assertion), "cloudflare_access")
        login = headers.get(TS_HEADER)
        if login and self._from_tailscaled(peer):
            return self._user(login.strip(), "tailscale")
        return None

    def _cloudflare_email(self, assertion: str) -> str:
        cf = self.settings.cloudflare_access
        assert cf is not None and self.cf_jwks is not None
        try:
            claims = verify_jwt(
                assertion,
                self.cf_jwks,
                algorithms=["RS256"],
                issuer=cf.issuer,
                audience=cf.audience,
                leeway=cf.leeway_seconds,
            )
        except TokenRefused as exc:
            self.access.audit.record(
                "tunnel:cloudflare_access", "sso.refused", cf.team_domain, reason=str(exc)
            )
            raise TunnelRefused(f"Cloudflare Access token refused: {exc}") from None
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise TunnelRefused("Cloudflare Access token refused: it names no email (a service token?)")
        return email

    def _from_tailscaled(self, peer: str | None) -> bool:
        ts = self.settings.tailscale
        if not ts.trust_user_header or not peer:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in ipaddress.ip_network(p, strict=False) for p in ts.proxies)

    def _user(self, email: str, via: str) -> TunnelUser:
        try:
            user = self.access.identity.user(email[:200])
        except NotFound:
            self.access.audit.record(f"tunnel:{via}", "sso.refused", email[:200], reason="no such user")
            raise TunnelRefused(f"{email[:200]} is not a user of this lab (ask an administrator)") from None
        if user.disabled:
            raise TunnelRefused(f"{email[:200]} is disabled in this lab")
        return TunnelUser(user, via, email)


def header_map(items: Any) -> dict[str, str]:
    """Starlette headers (or raw ASGI pairs) as a lower-cased dict of the two identity headers."""
    out: dict[str, str] = {}
    for name in (CF_HEADER, TS_HEADER):
        value = items.get(name) if hasattr(items, "get") else None
        if value:
            out[name] = value
    return out
