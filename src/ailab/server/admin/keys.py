"""Virtual API keys: create (shown once), list, revoke, limits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from ailab.access.policy import holds
from ailab.access.principal import Principal
from ailab.server.admin.deps import ApiError, allow, require
from ailab.server.admin.models import KeyCreate, LimitsBody

if TYPE_CHECKING:
    from ailab.server.state import LabState


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
        owner = body.user_id or p.user_id
        if owner is None:
            raise ApiError(
                400, "user_id: required when the caller is not a user (e.g. the master key)", "invalid_value"
            )
        allow(p, "keys.manage.own", owner_id=owner)
        if body.project_id is not None:
            allow(p, "keys.manage.own", project_id=body.project_id)
        expires = int((time.time() + body.expires_in_days * 86400) * 1000) if body.expires_in_days else None
        key, token = store.create(
            p.name,
            user=owner,
            project=body.project_id,
            name=body.name,
            models=body.models,
            expires_ms=expires,
            limits=body.to_limits(),
        )
        return {**key.public(), "key": token}  # the only time the key is shown

    @r.delete("/keys/{key_id}", openapi_extra={"x-permission": "keys.manage.own"})
    def revoke_key(key_id: str, p: Principal = own) -> dict[str, Any]:
        key = store.key(key_id)
        allow(p, "keys.manage.own", owner_id=key.user_id)
        return store.revoke(p.name, key_id).public()

    @r.put("/keys/{key_id}/limits", openapi_extra={"x-permission": "budgets.manage"})
    def key_limits(key_id: str, body: LimitsBody, p: Principal = budgets) -> dict[str, Any]:
        return store.set_limits(p.name, key_id, body.to_limits()).public()

    return r
