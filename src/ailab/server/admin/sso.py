"""SSO routes: `/auth/oidc/login` (to the provider), `/auth/oidc/callback` (back, with a session), the
relayed device flow for `ailab login`, and what the sign-in page and the CLI need to know."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from ailab.access.sso import (
    ProviderError,
    SignInRefused,
    SsoService,
    TooManySignIns,
    safe_next,
    set_session_cookie,
)
from ailab.server.admin.deps import ApiError

if TYPE_CHECKING:
    from ailab.server.state import LabState

PUBLIC = {"x-permission": "public"}


class DeviceTokenBody(BaseModel):
    device_code: str = Field(min_length=1, max_length=2000)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _redirect_uri(request: Request, svc: SsoService) -> str:
    return svc.settings.redirect_url or str(request.base_url).rstrip("/") + "/auth/oidc/callback"


def router(state: LabState) -> APIRouter:
    r = APIRouter(tags=["sso"])

    def service() -> SsoService:
        if state.sso is None or state.sso.oidc is None:
            raise ApiError(404, "single sign-on is not configured (access.sso.oidc)", "sso_not_configured")
        svc: SsoService = state.sso.oidc
        return svc

    @r.get("/api/auth/providers", openapi_extra=PUBLIC)
    def providers() -> dict[str, Any]:
        oidc = state.loaded.config.access.sso.oidc
        return {
            "oidc": None
            if oidc is None
            else {"name": oidc.name, "issuer": oidc.issuer, "login_url": "/auth/oidc/login", "device": True},
            "local_passwords": oidc is None or oidc.local_passwords,
        }

    _browser_routes(r, service)
    _device_routes(r, service)
    return r


def _browser_routes(r: APIRouter, service: Callable[[], SsoService]) -> None:
    """The authorization-code flow a browser follows: to the provider and back with a session cookie."""

    @r.get("/auth/oidc/login", openapi_extra=PUBLIC)
    def login(request: Request, next: str | None = None) -> RedirectResponse:
        svc = service()
        try:
            started = svc.begin(_redirect_uri(request, svc), safe_next(next))
        except TooManySignIns as exc:
            raise ApiError(429, str(exc), "sso_busy", headers={"Retry-After": "60"}) from None
        except SignInRefused as exc:
            raise ApiError(502, str(exc), "sso_provider_unavailable") from None
        return RedirectResponse(started.url, status_code=302)

    @r.get("/auth/oidc/callback", openapi_extra=PUBLIC)
    def callback(
        request: Request,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> RedirectResponse:
        svc = service()
        got = request.query_params.get("state")
        if error:
            why = f"the provider said {error[:64]}: {(error_description or '')[:200]}".rstrip(": ")
            if got:
                svc.store.take(got)  # that sign-in is over
            svc.refuse(why, _client(request))
            raise ApiError(401, f"sign-in refused: {why}", "sso_refused")
        if not got or not code:
            raise ApiError(400, "the callback needs `state` and `code`", "invalid_request")
        try:
            token, session, target = svc.finish(got, code[:2000], _client(request))
        except SignInRefused as exc:
            raise ApiError(401, f"sign-in refused: {exc}", "sso_refused") from None
        response = RedirectResponse(safe_next(target), status_code=303)
        set_session_cookie(response, request, token, session)
        return response


def _device_routes(r: APIRouter, service: Callable[[], SsoService]) -> None:
    """The device flow `ailab login` relays: it ends in a key for the CLI, not a cookie."""

    @r.post("/api/auth/oidc/device", openapi_extra=PUBLIC)
    def device_start() -> dict[str, Any]:
        try:
            return service().device_start()
        except SignInRefused as exc:
            raise ApiError(502, str(exc), "sso_provider_unavailable") from None

    @r.post("/api/auth/oidc/device/token", openapi_extra=PUBLIC)
    def device_token(body: DeviceTokenBody, request: Request) -> dict[str, Any]:
        svc = service()
        try:
            key, token, user = svc.device_finish(body.device_code, _client(request))
        except ProviderError as exc:
            if exc.error in ("authorization_pending", "slow_down"):
                raise ApiError(400, str(exc), exc.error) from None
            raise ApiError(401, f"sign-in refused: {exc}", exc.error or "sso_refused") from None
        except SignInRefused as exc:
            raise ApiError(401, f"sign-in refused: {exc}", "sso_refused") from None
        return {"key": token, "key_id": key.id, "expires_ms": key.expires_ms, "user": user.public()}
