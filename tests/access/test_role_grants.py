"""Role changes and keys for others stay within the caller's own permissions (no climbing to admin)."""

from __future__ import annotations

import httpx
import pytest

from ailab.access.policy import BUILTIN_ROLES
from tests.access.conftest import ACTOR
from tests.conftest import UPSTREAM_KEY, model

USER = sorted(BUILTIN_ROLES["user"])


@pytest.fixture
def lab(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [model("gpt", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "access": {
                "roles": {
                    "helpdesk": ["users.manage", *USER],
                    "keymaster": ["keys.manage.all", *USER],
                    "wide": ["users.manage", "audit.read", *USER],
                }
            },
        }
    )
    access = gw.app.state.access
    users = {}
    for name, role in (("hd", "helpdesk"), ("km", "keymaster"), ("boss", "admin"), ("joe", "user")):
        users[name] = access.identity.create_user(ACTOR, name, role, "correct-horse-battery").id
    tokens = {n: access.keys.create(ACTOR, user=uid)[1] for n, uid in users.items()}
    access.cache.load()
    return gw, users, tokens


def _c(gw, token: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_users_manage_cannot_climb_to_admin_or_a_wider_role(lab):
    gw, users, tokens = lab
    with _c(gw, tokens["hd"]) as c:
        assert c.patch(f"/api/users/{users['hd']}", json={"role": "admin"}).status_code == 403
        assert c.patch(f"/api/users/{users['joe']}", json={"role": "admin"}).status_code == 403
        assert c.patch(f"/api/users/{users['joe']}", json={"role": "wide"}).status_code == 403
        assert c.post("/api/users", json={"username": "evil", "role": "admin"}).status_code == 403
        # an administrator is out of reach: no password reset, disabling or deleting
        boss = f"/api/users/{users['boss']}"
        assert c.patch(boss, json={"password": "taken-over-now-1"}).status_code == 403
        assert c.patch(boss, json={"disabled": True}).status_code == 403
        assert c.delete(boss).status_code == 403
        # within its own permissions it works
        assert c.patch(f"/api/users/{users['joe']}", json={"role": "helpdesk"}).status_code == 200
    roles = {u.username: u.role for u in gw.app.state.access.identity.users()}
    assert roles["hd"] == "helpdesk" and roles["boss"] == "admin" and "evil" not in roles


def test_keys_manage_all_cannot_mint_a_key_for_someone_holding_more(lab):
    gw, users, tokens = lab
    with _c(gw, tokens["km"]) as c:
        assert c.post("/api/keys", json={"user_id": users["boss"]}).status_code == 403
        assert c.post("/api/keys", json={"user_id": users["hd"]}).status_code == 403  # holds users.manage
        assert c.post("/api/keys", json={"user_id": users["joe"]}).status_code == 201
