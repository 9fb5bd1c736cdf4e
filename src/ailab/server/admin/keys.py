"""Virtual API keys: create (shown once), list, revoke, limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter

from ailab.access import (
    ApiKey,
    GrantDenied,
    KeyGrant,
    NotFound,
    Principal,
    bound_key,
    check_models_served,
    check_outranks,
    holds,
)
from ailab.server.admin.deps import ApiError, allow, require
from ailab.server.admin.models import KeyCreate, LimitsBody

if TYPE_CHECKING:
    from ailab.server.state import LabState

T = TypeVar("T")


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["keys"])
    store = state.access.keys
    own = require(state, "keys.manage.own")
    budgets = require(state, "budgets.manage")

    @r.get("/keys", openapi_extra={"x-permission": "keys.manage.own"})
    def list_keys(
        user_id: str | None = None,
        project_id: str | None = None,
        include_revoked: bool = False,
        p: Principal = own,
    ) -> list[dict[str, Any]]:
        if not holds(p, "keys.manage.all"):
            if user_id not in (None, p.user_id):
                allow(p, "keys.manage.own", owner_id=user_id)
            user_id = p.user_id or "-"
        keys = store.keys(
            user_id=user_id, include_revoked=include_revoked, project_ids={project_id} if project_id else None
        )
        return [k.public() for k in keys]

    @r.post("/keys", status_code=201, openapi_extra={"x-permission": "keys.manage.own"})
    def create_key(body: KeyCreate, p: Principal = own) -> dict[str, Any]:
        owner_id = body.user_id or p.user_id
        if owner_id is None:
            raise ApiError(
                400, "user_id: required when the caller is not a user (e.g. the master key)", "invalid_value"
            )
        allow(p, "keys.manage.own", owner_id=owner_id)
        owner = state.access.identity.user(owner_id)
        if owner.id != p.user_id:
            _granting(lambda: check_outranks(p, state.access.roles.permissions(owner.role), "its owner"))
        if body.project_id is not None:
            allow(p, "keys.manage.own", project_id=body.project_id)
        check_models_served(body.models, served_models(state))
        expires = int((time.time() + body.expires_in_days * 86400) * 1000) if body.expires_in_days else None
        asked = KeyGrant(body.project_id, body.models, expires, body.to_limits())
        grant = _granting(lambda: bound_key(p, asked, may_budget=holds(p, "budgets.manage")))
        key, token = store.create(
            p.name,
            user=owner.id,
            project=grant.project_id,
            name=body.name,
            models=grant.models,
            expires_ms=grant.expires_ms,
            limits=grant.limits,
            parent_id=grant.parent_id,
        )
        return {**key.public(), "key": token}  # the only time the key is shown

    @r.delete("/keys/{key_id}", openapi_extra={"x-permission": "keys.manage.own"})
    def revoke_key(key_id: str, p: Principal = own) -> dict[str, Any]:
        key = visible_key(state, p, key_id)
        return store.revoke(p.name, key.id).public()

    @r.put("/keys/{key_id}/limits", openapi_extra={"x-permission": "budgets.manage"})
    def key_limits(key_id: str, body: LimitsBody, p: Principal = budgets) -> dict[str, Any]:
        if p.kind == "key" and key_id == p.key_id:
            raise ApiError(403, "a key may not change its own limits", "permission_denied")
        return store.set_limits(p.name, key_id, body.to_limits()).public()

    return r


def served_models(state: LabState) -> set[str]:
    """Model groups a key may name: what the router serves, and the knowledge models it will add."""
    groups = set(state.router.groups) if state.router is not None else set()
    knowledge = state.loaded.config.knowledge
    apps = {spec.alias for spec in state.apps.apps.apps.values()} if state.apps is not None else set()
    chat = {knowledge.chat_model} if knowledge.chat_model else set()
    return groups | {knowledge.embedding_model} | chat | apps  # apps: `app:NAME` (ailab.apps)


def visible_key(state: LabState, p: Principal, key_id: str) -> ApiKey:
    """The key, if the caller may act on it; a key it may not see answers as one that does not exist (404),
    so key ids cannot be probed."""
    try:
        key = state.access.keys.key(key_id)
        allow(p, "keys.manage.own", owner_id=key.user_id)
    except ApiError:
        raise NotFound("key", key_id) from None
    return key


def _granting(check: Callable[[], T]) -> T:
    try:
        return check()
    except GrantDenied as exc:
        raise ApiError(403, str(exc), "permission_denied") from None
