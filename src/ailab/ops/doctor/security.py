"""Security checks: Vault sealed or refusing us, access denials piling up, public routes that cannot work."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import orjson
from sqlalchemy import inspect, select

from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn, worst
from ailab.ops.doctor.context import DoctorContext, ago, http_problem
from ailab.secrets import SecretError

# -- Vault sealed ---------------------------------------------------------------------------------------


def vault_target(ctx: DoctorContext) -> tuple[str, bool] | None:
    """(URL, whether the lab's secrets live there) for the configured or installed Vault / OpenBao."""
    s = ctx.config.secrets
    if s.backend == "vault":
        url = s.vault_url or os.environ.get("VAULT_ADDR")
        return (url.rstrip("/") if url else "", True)
    for name in ("openbao", "vault"):
        if name in ctx.stack_components():
            return ctx.component_url(name), False
    return None


@check("vault", "Vault / OpenBao is unsealed and accepts the lab's credentials", "vault-sealed")
def vault_check(ctx: DoctorContext) -> Outcome:
    target = vault_target(ctx)
    if target is None:
        return skip("secrets.backend is local and no Vault / OpenBao is installed")
    url, used = target
    if not url:
        return fail(
            "secrets.backend is vault but neither secrets.vault_url nor VAULT_ADDR is set",
            "set secrets.vault_url (or export VAULT_ADDR)",
        )
    s = ctx.config.secrets
    headers = {"X-Vault-Namespace": s.vault_namespace} if s.vault_namespace else {}
    try:
        status = ctx.http.get(f"{url}/v1/sys/seal-status", headers=headers)
    except httpx.HTTPError as exc:
        return fail(f"Vault at {url}: {http_problem(exc)}", "start Vault / OpenBao, or fix secrets.vault_url")
    body = status.json() if status.status_code == 200 else {}
    if not body.get("initialized", True):
        return fail(f"Vault at {url} is not initialized", "`bao operator init` (or `vault operator init`)")
    if body.get("sealed"):
        progress = f"{body.get('progress', 0)} of {body.get('t', '?')} unseal keys given"
        return fail(
            f"Vault at {url} is sealed ({progress}); the lab cannot read secrets",
            "unseal it: `bao operator unseal` (or `vault operator unseal`) once per key share",
        )
    if status.status_code != 200:
        return fail(f"Vault at {url}: seal-status answered HTTP {status.status_code}")
    if not used:
        return passed(f"Vault at {url} is unsealed (the lab keeps its secrets locally)")
    return _vault_credentials(ctx, url, headers)


def _vault_credentials(ctx: DoctorContext, url: str, headers: dict[str, str]) -> Outcome:
    s = ctx.config.secrets
    try:
        if s.vault_auth == "approle":
            resp = ctx.http.post(
                f"{url}/v1/auth/approle/login",
                json={"role_id": s.vault_role_id, "secret_id": s.vault_secret_id},
                headers=headers,
            )
            what = "AppRole login"
        else:
            token = s.vault_token or os.environ.get("VAULT_TOKEN") or ""
            if not token:
                return fail("no Vault token: set secrets.vault_token or VAULT_TOKEN")
            resp = ctx.http.get(
                f"{url}/v1/auth/token/lookup-self", headers={**headers, "X-Vault-Token": token}
            )
            what = "the token"
    except httpx.HTTPError as exc:
        return fail(f"Vault at {url}: {http_problem(exc)}")
    if resp.status_code in (400, 401, 403):
        return fail(
            f"Vault at {url} is unsealed but rejects {what} (HTTP {resp.status_code})",
            "issue a new token (or secret_id) and set it in secrets.* or VAULT_TOKEN",
        )
    if resp.status_code != 200:
        return fail(f"Vault at {url}: {what} answered HTTP {resp.status_code}")
    ttl = (resp.json().get("data") or {}).get("ttl") if what == "the token" else None
    if isinstance(ttl, int) and 0 < ttl < 3600:
        return warn(f"Vault at {url} is unsealed; the token expires in {ago(ttl)}", "renew the token")
    return passed(f"Vault at {url} is unsealed and accepts {what}")


# -- RBAC denials ---------------------------------------------------------------------------------------

DENIAL_ACTIONS = ("access.denied", "auth.login_failed")


@check("access-denials", "No burst of access denials in the audit log", "rbac-denials")
def denials_check(ctx: DoctorContext) -> Outcome:
    from ailab.access import schema as access_schema

    audit_log = access_schema.audit_log
    engine = ctx.engine()
    if engine is None or not inspect(engine).has_table(audit_log.name):
        return skip("no audit log yet (the lab has not started)")
    since = int((ctx.clock() - 3600) * 1000)
    stmt = select(audit_log.c.actor, audit_log.c.action, audit_log.c.target, audit_log.c.detail).where(
        audit_log.c.ts_ms >= since, audit_log.c.action.in_(DENIAL_ACTIONS)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    top: Counter[str] = Counter()
    for actor, action, target, detail in rows:  # a row may stand for repeated denials (detail.count)
        who, n = _denial(actor, action, target, detail)
        top[who] += n
    total = sum(top.values())
    shown = ", ".join(f"{who} ({n}×)" for who, n in top.most_common(3))
    if total >= ctx.thresholds.denials_per_hour:
        return warn(
            f"{total} denials in the last hour; most: {shown}",
            "give the user a role that holds the permission (`ailab users set NAME --role R`, "
            "access.roles), add the user to the project, or revoke the key that keeps trying",
        )
    tail = f" ({shown})" if rows else ""
    return passed(f"{total} denial(s) in the last hour{tail}")


def _denial(actor: str, action: str, target: str | None, detail: str) -> tuple[str, int]:
    try:
        info = orjson.loads(detail) if detail else {}
    except orjson.JSONDecodeError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    count = info.get("count")
    n = count if isinstance(count, int) and count > 0 else 1
    if action == "auth.login_failed":
        return f"login failures for {target or '?'}", n
    return f"{actor} → {info.get('permission') or target or '?'}", n


# -- public access blocked ------------------------------------------------------------------------------

TUNNEL_SECRETS = {"cloudflared": "CLOUDFLARE_TUNNEL_TOKEN", "tailscale": "TS_AUTHKEY"}


@check("public-access", "Public routes pass the exposure guard and have their edge", "public-access-blocked")
def public_check(ctx: DoctorContext) -> Outcome:
    from ailab.stack import PublicAccessError, check_route
    from ailab.stack import component_catalog as catalog

    routes = ctx.stack_state().routes
    if not routes:
        return skip("nothing is published (`ailab expose` adds a public route)")
    installed = ctx.stack_components()
    outcomes: list[Outcome] = []
    for r in routes:
        name = f"https://{r.host} → {r.component} via {r.via}"
        try:
            check_route(r, catalog(), ctx.loaded.config.access.sso)
        except PublicAccessError as exc:
            outcomes.append(fail(f"{name}: {exc}"))
            continue
        needed = [c for c in (r.component, "traefik", r.via) if c not in installed]
        if needed:
            outcomes.append(fail(f"{name}: not installed: {', '.join(dict.fromkeys(needed))}"))
            continue
        outcomes.append(_tunnel_secret(ctx, name, r.via))
    bad = [o for o in outcomes if o.status != "pass"]
    return worst(
        outcomes,
        "; ".join(o.saw for o in bad) if bad else f"{len(routes)} public route(s) can render",
        "publish only components with a login (`ailab expose NAME --host H`), `ailab install` what is "
        "missing, and set tunnel credentials with `ailab secrets set stack.KEY`",
    )


def _tunnel_secret(ctx: DoctorContext, name: str, via: str) -> Outcome:
    key = TUNNEL_SECRETS.get(via)
    if key is None:
        return passed(name)
    try:
        store = ctx.secret_store()
        version = store.version(f"stack.{key}") if store is not None else None
    except SecretError as exc:
        return warn(f"{name}: cannot read the secret store ({exc})")
    if version is None:
        return fail(
            f"{name}: {key} is not set, so the tunnel cannot connect (`ailab secrets set stack.{key}`)"
        )
    return passed(name)


CHECKS = [vault_check, denials_check, public_check]
