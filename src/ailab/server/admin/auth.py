"""Login, logout and 'who am I'."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ailab.access import COOKIE, LoginFailed, LoginThrottled, Principal
from ailab.server.admin.deps import ApiError, require

if TYPE_CHECKING:
    from ailab.server.state import LabState


class LoginBody(BaseModel):
    username: str
    password: str


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["auth"])
    anyone = require(state, None)

    @r.post("/auth/login", openapi_extra={"x-permission": "public"})
    def login(body: LoginBody, request: Request, response: Response) -> dict[str, object]:
        client = request.client.host if request.client else "unknown"
        try:
            token, session = state.access.sessions.login(body.username, body.password, client)
        except LoginThrottled as exc:
            raise ApiError(
                429, str(exc), "login_throttled", headers={"Retry-After": str(int(exc.retry_after) + 1)}
            ) from None
        except LoginFailed as exc:
            raise ApiError(401, str(exc), "login_failed") from None
        max_age = max(60, int(session.expires_ms / 1000 - time.time()))
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=max_age,
        )
        return {
            "user": session.user.public(),
            "csrf_token": session.csrf_token,
            "expires_ms": session.expires_ms,
        }

    @r.post("/auth/logout", openapi_extra={"x-permission": "authenticated"})
    def logout(request: Request, response: Response, _: Principal = anyone) -> dict[str, bool]:
        token = request.cookies.get(COOKIE)
        if token:
            state.access.sessions.logout(token)
        response.delete_cookie(COOKIE)
        return {"ok": True}

    @r.get("/me", openapi_extra={"x-permission": "authenticated"})
    def me(principal: Principal = anyone) -> dict[str, object]:
        return {
            "id": principal.id,
            "kind": principal.kind,
            "role": principal.role,
            "user_id": principal.user_id,
            "project_id": principal.project_id,
            "projects": sorted(principal.projects),
            "permissions": sorted(principal.permissions),
        }

    return r
