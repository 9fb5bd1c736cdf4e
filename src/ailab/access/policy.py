"""Permissions in one place: `decide()` answers allow/deny with a reason; every route asks it.

Roles are sets of permissions. Built-ins: admin (everything), analyst, user; custom roles come from
`access.roles` in the config. Scoped checks: `project_id` must be one of the principal's projects, `owner_id`
must be the principal's own user id, unless the role holds the wider permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ailab.access.principal import Principal

PERMISSIONS: dict[str, str] = {
    "models.use": "call /v1 chat completions, embeddings and list models",
    "knowledge.use": "search and ask the knowledge collections of one's projects",
    "knowledge.manage": "create, fill and delete knowledge collections of one's projects",
    "knowledge.manage.global": "create, fill and delete lab-wide knowledge collections (no project)",
    "apps.use": "call the apps of one's projects (app:NAME, /v1/apps/NAME) and list them",
    "apps.manage": "read apps' definitions (prompts, tools) and export them (Dify DSL)",
    "usage.read.own": "read one's own usage and cost",
    "usage.read.project": "read usage and cost of one's projects",
    "usage.read.all": "read everyone's usage and cost",
    "keys.manage.own": "create, list and revoke one's own API keys",
    "keys.manage.all": "create, list and revoke anyone's API keys",
    "projects.read.own": "see one's projects and their members",
    "projects.manage": "create and delete projects, manage memberships",
    "users.manage": "create, change and disable users",
    "budgets.manage": "set budgets and rate limits of users, projects and keys",
    "secrets.manage": "read and write secrets",
    "audit.read": "read and verify the audit log",
}

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "analyst": frozenset(
        {
            "models.use",
            "knowledge.use",
            "knowledge.manage",
            "apps.use",
            "apps.manage",
            "usage.read.own",
            "usage.read.project",
            "keys.manage.own",
            "projects.read.own",
        }
    ),
    "user": frozenset(
        {
            "models.use",
            "knowledge.use",
            "apps.use",
            "usage.read.own",
            "keys.manage.own",
            "projects.read.own",
        }
    ),
}

# A narrower permission is implied by its wider sibling.
WIDER = {
    "usage.read.own": ("usage.read.project", "usage.read.all"),
    "usage.read.project": ("usage.read.all",),
    "keys.manage.own": ("keys.manage.all",),
    "projects.read.own": ("projects.manage",),
    "knowledge.use": ("knowledge.manage",),
    "apps.use": ("apps.manage",),
}


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class Roles:
    def __init__(self, custom: Mapping[str, list[str]] | None = None) -> None:
        self.roles = dict(BUILTIN_ROLES)
        for name, perms in (custom or {}).items():
            unknown = sorted(set(perms) - set(PERMISSIONS) - {"*"})
            if unknown:
                raise ValueError(f"access.roles.{name}: unknown permissions {', '.join(unknown)}")
            if name in BUILTIN_ROLES:
                raise ValueError(f"access.roles.{name}: built-in roles cannot be redefined")
            self.roles[name] = frozenset(perms)

    def permissions(self, role: str) -> frozenset[str]:
        return self.roles.get(role, frozenset())

    def check(self, role: str) -> str:
        if role not in self.roles:
            raise ValueError(f"unknown role {role!r}: choose one of {', '.join(sorted(self.roles))}")
        return role


def holds(principal: Principal, permission: str) -> bool:
    perms = principal.permissions
    return "*" in perms or permission in perms or any(w in perms for w in WIDER.get(permission, ()))


def decide(
    principal: Principal, permission: str, *, project_id: str | None = None, owner_id: str | None = None
) -> Decision:
    """May `principal` do `permission` (on `project_id` / on something owned by `owner_id`)?"""
    who = principal.name
    if "*" in principal.permissions:
        return Decision(True, f"{who} is an administrator")
    if not holds(principal, permission):
        return Decision(False, f"{who} (role {principal.role}) lacks permission {permission}")
    if (
        project_id is not None
        and not _wider_for_projects(principal, permission)
        and project_id not in principal.projects
    ):
        return Decision(False, f"{who} is not a member of project {project_id}")
    if owner_id is not None and owner_id != principal.user_id and not _wider_for_owner(principal, permission):
        return Decision(False, f"{who} may only act on its own {permission.split('.')[0]}")
    return Decision(True, f"{who} holds {permission}")


@dataclass(frozen=True, slots=True)
class UsageScope:
    """Whose usage a caller may see: `where` is the ledger filter (`ledger.usage_report(where=…)`, empty:
    everything), meaningful only when `decision` allows."""

    decision: Decision
    where: dict[str, set[str]]

    def __bool__(self) -> bool:
        return self.decision.allowed


def usage_scope(
    principal: Principal, project_id: str | None = None, user_id: str | None = None
) -> UsageScope:
    """The usage rows `principal` may read, narrowed to `project_id` / `user_id` when asked: everything
    (usage.read.all), its projects' (usage.read.project), else its own. One rule for the admin API, the
    console and `ailab usage --key`."""
    p = principal
    if holds(p, "usage.read.all"):
        out: dict[str, set[str]] = {}
        reason = f"{p.name} holds usage.read.all"
    elif holds(p, "usage.read.project"):
        if project_id is not None:
            d = decide(p, "usage.read.project", project_id=project_id)
            if not d:
                return UsageScope(d, {})
        out = {"project": {project_id} if project_id else set(p.projects)}
        if user_id is not None:
            out["user"] = {user_id}
        return UsageScope(Decision(True, f"{p.name} reads its projects' usage"), out)
    else:
        if user_id not in (None, p.user_id):
            d = decide(p, "usage.read.own", owner_id=user_id)
            if not d:
                return UsageScope(d, {})
        out = {"user": {p.user_id or "-"}}
        reason = f"{p.name} reads its own usage"
    if project_id is not None:
        out["project"] = {project_id}
    if user_id is not None and "user" not in out:
        out["user"] = {user_id}
    return UsageScope(Decision(True, reason), out)


def _wider_for_projects(principal: Principal, permission: str) -> bool:
    return any(w.endswith(".all") and w in principal.permissions for w in WIDER.get(permission, ()))


def _wider_for_owner(principal: Principal, permission: str) -> bool:
    return any(w in principal.permissions for w in WIDER.get(permission, ()))
