"""The admin API (FastAPI: typed bodies and an OpenAPI spec at /openapi.json), mounted beside the hot path.

Errors use the same shape as the /v1 API: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ailab import __version__
from ailab.access import Conflict, NotFound
from ailab.gateway import GatewayError, openapi_merge
from ailab.server.admin import audit, auth, keys, knowledge, knowledge_eval, people, secrets, sso, usage
from ailab.server.admin.deps import ApiError

if TYPE_CHECKING:
    from ailab.server.state import LabState

MAX_MESSAGE = 500
MAX_PARAM = 100


def build_admin_app(state: LabState) -> FastAPI:
    app = FastAPI(
        title="Local AI Lab",
        version=__version__,
        docs_url=None,  # /docs and /redoc come from the console, with vendored assets (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for module in (auth, sso, people, keys, usage, audit, secrets, knowledge, knowledge_eval):
        app.include_router(module.router(state))
    for extra in state.admin_routers:
        app.include_router(extra(state))
    _error_handlers(app)
    _console(app, state)
    _hoist_defs(app, state)
    app.add_middleware(IdentityChangesTakeEffect, state=state)
    return app


def _hoist_defs(app: FastAPI, state: LabState) -> None:
    """Schemas given in `openapi_extra` (pydantic's model_json_schema()) carry `$defs` with refs to
    `#/$defs/X`, which point nowhere in an OpenAPI document: move them to components/schemas. The gateway's
    raw-ASGI /v1 routes are merged in too (gateway/openapi.py), from its route table."""
    build = app.openapi

    def spec() -> dict[str, Any]:
        if app.openapi_schema is None:
            out = build()
            schemas = out.setdefault("components", {}).setdefault("schemas", {})
            _hoist(out, schemas)
            if state.api is None:
                return out  # not started yet: not cached, so the /v1 routes appear once it is
            app.openapi_schema = openapi_merge(out, state.api)
        return app.openapi_schema

    app.openapi = spec  # type: ignore[method-assign]


def _hoist(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _hoist(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist(value, schemas)


def _console(app: FastAPI, state: LabState) -> None:
    from ailab.console import build_console, docs_routes

    app.router.routes.extend(docs_routes(app.openapi_url or "/openapi.json", app.title))
    app.mount("/console", build_console(state))


class IdentityChangesTakeEffect:
    """After a change through the admin API (a key created or revoked, a user disabled, limits set), the
    worker that answers reloads its key cache before it answers, so the change holds for the caller's very
    next request; other workers follow within `access.refresh_interval`."""

    def __init__(self, app: ASGIApp, state: LabState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_after_refresh(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self.state.refresh_keys()
            await send(message)

        await self.app(scope, receive, send_after_refresh)


def _error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if len(message) > MAX_MESSAGE:  # a message quoting user input never echoes all of it
        message = f"{message[:MAX_MESSAGE]}…"
    if param is not None and len(param) > MAX_PARAM:
        param = f"{param[:MAX_PARAM]}…"
    body = GatewayError(status, message, code=code, param=param).body()
    return JSONResponse(body, status_code=status, headers=headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = exc.code if isinstance(exc, ApiError) else None
        return _error(exc.status_code, str(exc.detail), code, headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"] if x != "body")
        return _error(400, f"{loc}: {err['msg']}", "invalid_value", param=loc)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc), "not_found")

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc), "conflict")

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc), "invalid_value")
