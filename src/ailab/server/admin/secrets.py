"""Secrets over HTTP: names and metadata out, values only in (never returned)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pydantic import Field

from ailab.access import Principal
from ailab.secrets import SecretError, SecretNotFound, SecretStoreUnavailable
from ailab.server.admin.deps import ApiError, require
from ailab.server.admin.models import Strict

if TYPE_CHECKING:
    from ailab.server.state import LabState


class SecretValue(Strict):
    value: str = Field(min_length=1)


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["secrets"])
    manage = require(state, "secrets.manage")

    def store(p: Principal) -> Any:
        try:
            return state.secret_store(actor=p.name)
        except SecretStoreUnavailable as exc:
            raise ApiError(503, str(exc), "secret_store_unavailable") from None

    @r.get("/secrets", openapi_extra={"x-permission": "secrets.manage"})
    def list_secrets(p: Principal = manage) -> list[dict[str, Any]]:
        return [asdict(m) for m in store(p).list()]

    @r.put("/secrets/{name}", openapi_extra={"x-permission": "secrets.manage"})
    def set_secret(name: str, body: SecretValue, p: Principal = manage) -> dict[str, Any]:
        return {"name": name, "version": _call(lambda: store(p).set(name, body.value))}

    @r.post("/secrets/{name}/rotate", openapi_extra={"x-permission": "secrets.manage"})
    def rotate_secret(name: str, body: SecretValue, p: Principal = manage) -> dict[str, Any]:
        version, _ = _call(lambda: store(p).rotate(name, body.value))
        return {"name": name, "version": version}

    @r.delete("/secrets/{name}", status_code=204, openapi_extra={"x-permission": "secrets.manage"})
    def delete_secret(name: str, p: Principal = manage) -> None:
        if not _call(lambda: store(p).delete(name)):
            raise ApiError(404, f"secret {name!r} not found", "not_found")

    return r


def _call(fn: Any) -> Any:
    try:
        return fn()
    except SecretNotFound as exc:
        raise ApiError(404, str(exc), "not_found") from None
    except SecretStoreUnavailable as exc:
        raise ApiError(503, str(exc), "secret_store_unavailable") from None
    except SecretError as exc:
        raise ApiError(400, str(exc), "secret_error") from None
