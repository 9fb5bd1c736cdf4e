"""From a provider's claims to a lab user: who (username), may they (email domain), and what role and
projects their groups give them. Applied at every sign-in, so leaving a group takes its role away."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ailab.access.policy import Roles
from ailab.config import OidcSettings


class Refused(Exception):
    """This identity may not sign in (the message says why; it is audited and shown)."""


@dataclass(frozen=True)
class Mapped:
    username: str
    email: str | None
    groups: tuple[str, ...]
    role: str
    projects: tuple[str, ...]  # names, from `group_projects`
    managed_projects: frozenset[str]  # every project the mapping speaks about


def groups_of(claims: dict[str, Any], claim: str) -> tuple[str, ...]:
    """The group claim as a list of strings: a list, one string, or space/comma separated (some providers)."""
    value: Any = claims
    for part in claim.split("."):  # e.g. realm_access.roles (Keycloak)
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, (str, int)))
    return ()


def email_allowed(email: str | None, verified: Any, domains: list[str]) -> str | None:
    """None when allowed, else why not. An address the provider says is unverified is never used: it
    names the lab user (and may match one invited by name), so it must belong to whoever signs in."""
    if email and verified is False:
        return f"the email address {email!r} is not verified at the provider"
    if not domains:
        return None
    if not email or "@" not in email:
        return "the provider sent no email address, and allowed_email_domains is set"
    domain = email.rsplit("@", 1)[1].lower()
    if domain not in {d.lower().lstrip("@") for d in domains}:
        return f"the email domain {domain!r} is not allowed here"
    return None


def _strongest(roles: Roles, names: set[str]) -> str:
    """The role granting the most (admin over analyst over user); ties by name, to be stable."""
    return max(names, key=lambda r: (len(roles.permissions(r)), r))


def map_claims(claims: dict[str, Any], settings: OidcSettings, roles: Roles) -> Mapped:
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    why = email_allowed(email, claims.get("email_verified"), settings.allowed_email_domains)
    if why:
        raise Refused(why)
    username = claims.get(settings.username_claim) or claims.get("preferred_username") or claims["sub"]
    groups = groups_of(claims, settings.role_claim)
    granted = {settings.group_roles[g] for g in groups if g in settings.group_roles}
    if not granted:
        if settings.default_role is None:
            raise Refused(f"none of the groups {list(groups)[:20]} maps to a role here")
        granted = {settings.default_role}
    projects = sorted({p for g in groups for p in settings.group_projects.get(g, [])})
    managed = frozenset(p for names in settings.group_projects.values() for p in names)
    return Mapped(str(username)[:200], email, groups, _strongest(roles, granted), tuple(projects), managed)
