"""One policy: allow/deny with a reason, scoped by project and owner; custom roles from config."""

from __future__ import annotations

import pytest

from ailab.access.policy import BUILTIN_ROLES, PERMISSIONS, Roles, decide
from ailab.access.principal import MASTER, Principal


def who(role: str, projects=("p1",), user="u1", roles: Roles | None = None) -> Principal:
    r = roles or Roles()
    return Principal(
        id=user,
        kind="user",
        role=role,
        permissions=r.permissions(role),
        user_id=user,
        projects=frozenset(projects),
    )


def test_admin_and_master_may_do_everything():
    for perm in PERMISSIONS:
        assert decide(MASTER, perm, project_id="any")
        assert decide(who("admin", projects=()), perm, project_id="any", owner_id="u9")


def test_builtin_matrix_with_reasons():
    assert decide(who("user"), "models.use")
    denied = decide(who("user"), "usage.read.project")
    assert not denied and "lacks permission usage.read.project" in denied.reason
    assert decide(who("analyst"), "usage.read.project", project_id="p1")
    other = decide(who("analyst"), "usage.read.project", project_id="p2")
    assert not other and "not a member of project p2" in other.reason
    assert decide(who("user"), "keys.manage.own", owner_id="u1")
    assert not decide(who("user"), "keys.manage.own", owner_id="u2")
    assert not decide(who("analyst"), "users.manage")
    assert decide(who("analyst"), "knowledge.use")  # implied by knowledge.manage


def test_custom_roles_from_config():
    roles = Roles({"auditor": ["audit.read", "usage.read.all"]})
    auditor = who("auditor", roles=roles)
    assert decide(auditor, "audit.read") and decide(auditor, "usage.read.project", project_id="p9")
    assert not decide(auditor, "models.use")
    with pytest.raises(ValueError, match="unknown permissions"):
        Roles({"bad": ["fly"]})
    with pytest.raises(ValueError, match="built-in"):
        Roles({"admin": ["models.use"]})


def test_every_builtin_permission_is_documented():
    for perms in BUILTIN_ROLES.values():
        assert perms <= set(PERMISSIONS) | {"*"}


def test_usage_scope_says_whose_usage_and_why():
    from ailab.access.policy import usage_scope

    everything = usage_scope(MASTER)
    assert everything and everything.where == {} and "usage.read.all" in everything.decision.reason
    assert usage_scope(who("analyst", projects=("p1", "p2"))).where == {"project": {"p1", "p2"}}
    assert usage_scope(who("analyst"), "p1", "u7").where == {"project": {"p1"}, "user": {"u7"}}
    outside = usage_scope(who("analyst"), project_id="p9")
    assert not outside and "not a member of project p9" in outside.decision.reason
    assert usage_scope(who("user")).where == {"user": {"u1"}}
    assert usage_scope(who("user"), project_id="p1").where == {"user": {"u1"}, "project": {"p1"}}
    someone_else = usage_scope(who("user"), user_id="u2")
    assert not someone_else and "may only act on its own usage" in someone_else.decision.reason
