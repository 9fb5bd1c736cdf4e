"""A loopback stand-in for Dify 1.1.3's console API: the endpoints `ailab apps provision-dify` calls, with
Dify's request and answer shapes, and the checks Dify's importer (AppDslService.import_app) makes on a
DSL file. It keeps what was created, so a second run can be checked for idempotence."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DSL_VERSION = "0.1.5"


@dataclass
class FakeDify:
    admin: dict[str, str] | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    plugins: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    knowledge_apis: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    apps: list[dict[str, Any]] = field(default_factory=list)
    imported: list[dict[str, Any]] = field(default_factory=list)  # the parsed DSL documents
    calls: list[str] = field(default_factory=list)


def importer_problem(doc: Any) -> str | None:
    """What Dify's importer refuses (and what it needs to build a chat app), or None."""
    if not isinstance(doc, dict):
        return "Invalid YAML format: content must be a mapping"
    if not isinstance(doc.get("version"), str):
        return "Invalid version type, expected str"
    if doc.get("kind") != "app":
        return "kind must be app"
    app = doc.get("app")
    if not app:
        return "Missing app data in YAML content"
    if app.get("mode") not in ("chat", "agent-chat", "completion", "advanced-chat", "workflow"):
        return "loss app mode"
    if not isinstance(doc.get("model_config"), dict):
        return "Missing model_config for chat/agent-chat/completion app"
    for dep in doc.get("dependencies") or []:
        if dep.get("type") != "marketplace" or "marketplace_plugin_unique_identifier" not in dep["value"]:
            return "invalid dependency"
    return None


def make_app(state: FakeDify) -> Starlette:
    def authed(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.token}"

    def refuse() -> JSONResponse:
        return JSONResponse({"code": "unauthorized", "message": "Unauthorized."}, 401)

    async def setup(request: Request) -> JSONResponse:
        state.calls.append(f"{request.method} /setup")
        if request.method == "GET":
            step = "finished" if state.admin else "not_started"
            return JSONResponse({"step": step, "setup_at": None})
        if state.admin:
            return JSONResponse({"code": "already_setup", "message": "already set up"}, 403)
        body = await request.json()
        assert set(body) >= {"email", "name", "password"}
        state.admin = body
        return JSONResponse({"result": "success"}, 201)

    async def login(request: Request) -> JSONResponse:
        state.calls.append("POST /login")
        body = await request.json()
        admin = state.admin or {}
        if body.get("email") != admin.get("email") or body.get("password") != admin.get("password"):
            return JSONResponse({"code": "authentication_failed", "message": "Invalid"}, 401)
        return JSONResponse(
            {"result": "success", "data": {"access_token": state.token, "refresh_token": "r"}}
        )

    async def plugin_list(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        plugins = [{"plugin_id": p.split(":")[0], "plugin_unique_identifier": p} for p in state.plugins]
        return JSONResponse({"plugins": plugins})

    async def plugin_install(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        state.calls.append("POST /plugin/install/marketplace")
        body = await request.json()
        state.plugins.extend(body["plugin_unique_identifiers"])
        return JSONResponse({"all_installed": False, "task_id": "t1"})

    async def plugin_task(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        return JSONResponse({"task": {"id": request.path_params["task"], "status": "success"}})

    async def models(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        body = await request.json()
        body["provider"] = request.path_params["provider"]
        state.models.append(body)
        return JSONResponse({"result": "success"})

    async def knowledge_apis(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        if request.method == "GET":
            return JSONResponse({"data": state.knowledge_apis, "has_more": False, "total": 0})
        body = await request.json()
        made = {"id": str(uuid.uuid4()), **body}
        state.knowledge_apis.append(made)
        return JSONResponse(made, 201)

    async def datasets(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        return JSONResponse({"data": state.datasets, "has_more": False, "total": len(state.datasets)})

    async def external_dataset(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        body = await request.json()
        ids = {a["id"] for a in state.knowledge_apis}
        if body.get("external_knowledge_api_id") not in ids:
            return JSONResponse({"code": "not_found", "message": "api template not found"}, 404)
        made = {"id": str(uuid.uuid4()), "provider": "external", **body}
        state.datasets.append(made)
        return JSONResponse(made, 201)

    async def apps(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        return JSONResponse({"data": state.apps, "has_more": False, "page": 1, "limit": 100})

    async def imports(request: Request) -> JSONResponse:
        if not authed(request):
            return refuse()
        body = await request.json()
        import_id = str(uuid.uuid4())
        if body.get("mode") != "yaml-content" or not body.get("yaml_content"):
            return JSONResponse({"id": import_id, "status": "failed", "error": "bad mode"}, 400)
        doc = yaml.safe_load(body["yaml_content"])
        problem = importer_problem(doc)
        if problem:
            return JSONResponse({"id": import_id, "status": "failed", "error": problem}, 400)
        state.imported.append(doc)
        app = {"id": str(uuid.uuid4()), "name": doc["app"]["name"], "mode": doc["app"]["mode"]}
        state.apps.append(app)
        status = "completed" if doc["version"] == DSL_VERSION else "completed-with-warnings"
        return JSONResponse(
            {
                "id": import_id,
                "status": status,
                "app_id": app["id"],
                "app_mode": app["mode"],
                "current_dsl_version": DSL_VERSION,
                "imported_dsl_version": doc["version"],
                "error": "",
            }
        )

    base = "/console/api"
    ws = f"{base}/workspaces/current"
    return Starlette(
        routes=[
            Route(f"{base}/setup", setup, methods=["GET", "POST"]),
            Route(f"{base}/login", login, methods=["POST"]),
            Route(f"{ws}/plugin/list", plugin_list),
            Route(f"{ws}/plugin/install/marketplace", plugin_install, methods=["POST"]),
            Route(f"{ws}/plugin/tasks/{{task}}", plugin_task),
            Route(f"{ws}/model-providers/{{provider:path}}/models", models, methods=["POST"]),
            Route(f"{base}/datasets/external-knowledge-api", knowledge_apis, methods=["GET", "POST"]),
            Route(f"{base}/datasets/external", external_dataset, methods=["POST"]),
            Route(f"{base}/datasets", datasets),
            Route(f"{base}/apps", apps),
            Route(f"{base}/apps/imports", imports, methods=["POST"]),
        ]
    )
