"""Single sign-on: OpenID Connect (code + PKCE, device flow) and the identity layers of a tunnel
(Cloudflare Access JWTs, Tailscale's user header). See docs/sso.md.

The access pillar's second door: the server and the console import single sign-on from here only."""

from ailab.access.sso.oidc import ProviderError
from ailab.access.sso.service import SignInRefused, SsoService, TooManySignIns
from ailab.access.sso.tunnel import TunnelRefused
from ailab.access.sso.web import safe_next, set_session_cookie, tunnel_sign_in
from ailab.access.sso.wiring import start_sso

__all__ = [
    "ProviderError",
    "SignInRefused",
    "SsoService",
    "TooManySignIns",
    "TunnelRefused",
    "safe_next",
    "set_session_cookie",
    "start_sso",
    "tunnel_sign_in",
]
