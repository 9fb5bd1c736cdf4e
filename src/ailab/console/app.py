"""The console as one Starlette app mounted at /console (gzip on its responses only, never on /v1), plus
/docs and /redoc served from the vendored Swagger UI and Redoc."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ailab.console import account, admin, lists, overview, play, usage
from ailab.console.web import HERE, Pages, viewer

if TYPE_CHECKING:
    from ailab.server.state import LabState

VENDOR = "/console/static/vendor"


class CachedStatic(StaticFiles):
    """Static files with a cache lifetime: the vendored files change only with the package."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        return response


def build_console(state: LabState) -> Starlette:
    pages = Pages(state)

    def not_found(request: Request, exc: Exception) -> Response:
        v = viewer(state, request)
        if v is None:
            return RedirectResponse("/console/login", status_code=303)
        return pages.denied(request, v, 404, f"there is no console page at {request.url.path}")

    routes = [
        *account.routes(state, pages),
        *overview.routes(state, pages),
        *usage.routes(state, pages),
        *lists.routes(state, pages),
        *admin.routes(state, pages),
        *play.routes(state, pages),
        Mount("/static", CachedStatic(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers={404: not_found},
    )


def docs_routes(openapi_url: str, title: str) -> list[Route]:
    """/ (to the console), /docs and /redoc with vendored assets: they work offline."""

    async def root(_: Request) -> Response:
        return RedirectResponse("/console/", status_code=307)

    async def swagger(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — API",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        )

    async def redoc(_: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} — API",
            redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    return [
        Route("/", root, include_in_schema=False),
        Route("/docs", swagger, include_in_schema=False),
        Route("/redoc", redoc, include_in_schema=False),
    ]
