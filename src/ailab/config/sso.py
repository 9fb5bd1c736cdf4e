"""`access.sso:` — OpenID Connect sign-in and the identity layers of a tunnel (docs/sso.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Asymmetric signatures only: `none` and the HMAC family (a shared secret as key) are never accepted.
ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OidcSettings(_Strict):
    """One OpenID provider, found by its issuer URL (discovery)."""

    issuer: str
    client_id: str
    client_secret: str | None = None  # `secret/NAME` (the lab's secret store) or `os.environ/NAME`
    name: str = "SSO"  # shown on the button: "Sign in with <name>"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    role_claim: str = "groups"
    default_role: str | None = "user"  # role when no group maps; None refuses such users
    group_roles: dict[str, str] = Field(default_factory=dict)  # group -> role (highest one wins)
    group_projects: dict[str, list[str]] = Field(default_factory=dict)  # group -> project names
    allowed_email_domains: list[str] = Field(default_factory=list)  # empty: any verified email
    username_claim: str = "email"
    local_passwords: bool = True  # false: only SSO (and the break-glass master key) sign in
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    leeway_seconds: int = Field(default=60, ge=0, le=600)
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)  # unknown `kid`: refetch at most this often
    refresh_interval_seconds: float = Field(default=300.0, gt=0)  # re-ask the provider about each session
    login_ttl_seconds: float = Field(default=600.0, gt=0)  # a started sign-in (state, nonce) lives this long
    cli_key_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # `ailab login` key lifetime
    redirect_url: str | None = None  # default: <request base>/auth/oidc/callback

    @field_validator("algorithms")
    @classmethod
    def _no_weak_algs(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ALLOWED_ALGS]
        if bad or not v:
            raise ValueError(f"algorithms must be a non-empty subset of {', '.join(ALLOWED_ALGS)}; got {bad}")
        return v

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")):
            raise ValueError("issuer must be an https:// URL (http only on loopback, for tests)")
        return v.rstrip("/")


class CloudflareAccessSettings(_Strict):
    """Cloudflare Tunnel with Access in front: every request carries `Cf-Access-Jwt-Assertion`."""

    team_domain: str  # e.g. myteam.cloudflareaccess.com
    audience: str  # the Access application's AUD tag
    certs_url: str | None = None  # default: https://<team_domain>/cdn-cgi/access/certs
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)
    leeway_seconds: int = Field(default=60, ge=0, le=600)

    @property
    def issuer(self) -> str:
        return "https://" + self.team_domain.removeprefix("https://").rstrip("/")

    @property
    def team(self) -> str:
        """The team name (the first label of the team domain), as cloudflared's `teamName` wants it."""
        return self.team_domain.removeprefix("https://").split(".", 1)[0]

    @property
    def certs(self) -> str:
        return self.certs_url or f"{self.issuer}/cdn-cgi/access/certs"


class TailscaleSettings(_Strict):
    """Tailscale Serve/Funnel: `Tailscale-User-Login` is believed only from the local tailscaled proxy."""

    trust_user_header: bool = False
    proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])  # tailscaled's peer address


class SsoSettings(_Strict):
    oidc: OidcSettings | None = None
    cloudflare_access: CloudflareAccessSettings | None = None
    tailscale: TailscaleSettings = Field(default_factory=TailscaleSettings)

    def identity_layers(self) -> list[str]:
        """Which identity layers are configured (the public-access guard requires one)."""
        out = []
        if self.oidc is not None:
            out.append("oidc")
        if self.cloudflare_access is not None:
            out.append("cloudflare_access")
        if self.tailscale.trust_user_header:
            out.append("tailscale")
        return out
