"""Single sign-on: OpenID Connect (code + PKCE, device flow) and the identity layers of a tunnel
(Cloudflare Access JWTs, Tailscale's user header). See docs/sso.md."""
