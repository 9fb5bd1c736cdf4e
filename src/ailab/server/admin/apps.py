"""Admin API for apps under /api/apps: list (apps.use), definitions and Dify export (apps.manage), and the
retrieval endpoint Dify's "external knowledge" datasets call (`POST /api/apps/dify/retrieval`), which
searches the lab's collections for Dify with the caller's key (knowledge.use on the collection)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from ailab.access import Principal, decide
from ailab.apps import AppRequestError, AppSpec
from ailab.server import apps as server_apps
from ailab.server.admin.deps import ApiError, require

if TYPE_CHECKING:
    from ailab.server.state import LabState


class RetrievalSetting(BaseModel):
    top_k: int = Field(default=5, ge=1, le=100)
    score_threshold: float = Field(default=0.0, ge=0, le=1)


class RetrievalBody(BaseModel):
    """Dify's External Knowledge API request."""

    knowledge_id: str = Field(min_length=1, max_length=100)
    query: str = Field(min_length=1, max_length=10_000)
    retrieval_setting: RetrievalSetting = Field(default_factory=RetrievalSetting)


def summary(spec: AppSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "alias": spec.alias,
        "description": spec.description,
        "model": spec.model,
        "project": spec.project,
        "collections": spec.knowledge.collections if spec.knowledge else [],
        "tools": [t.function.name for t in spec.tools],
        "variables": sorted(spec.variables),
    }


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api/apps", tags=["apps"])
    use = require(state, "apps.use")
    manage = require(state, "apps.manage")
    knowledge = require(state, "knowledge.use")

    def get(p: Principal, name: str, permission: str) -> AppSpec:
        try:
            return server_apps.of(state).get(p, name, permission)
        except AppRequestError as exc:
            raise ApiError(exc.status, str(exc), exc.code) from None

    @r.get("", openapi_extra={"x-permission": "apps.use"})
    def list_apps(p: Principal = use) -> list[dict[str, Any]]:
        return [summary(s) for s in server_apps.of(state).visible(p)]

    @r.get("/{name}", openapi_extra={"x-permission": "apps.manage"})
    def show(name: str, p: Principal = manage) -> dict[str, Any]:
        spec = get(p, name, "apps.manage")
        svc = server_apps.of(state)
        return {**spec.model_dump(mode="json"), "declared_in": svc.apps.sources.get(spec.name)}

    @r.get("/{name}/export", openapi_extra={"x-permission": "apps.manage"}, response_model=None)
    def export(name: str, to: str = "dify", p: Principal = manage) -> PlainTextResponse:
        from ailab.apps import dump, export_app

        if to != "dify":
            raise ApiError(400, "to: only dify is supported", "invalid_value")
        doc, _ = export_app(get(p, name, "apps.manage"))
        return PlainTextResponse(dump(doc), media_type="application/yaml")

    @r.post("/dify/retrieval", openapi_extra={"x-permission": "knowledge.use"}, response_model=None)
    async def retrieval(body: RetrievalBody, p: Principal = knowledge) -> Any:
        return await _retrieve(state, p, body)

    return r


async def _retrieve(state: LabState, p: Principal, body: RetrievalBody) -> Any:
    """Dify's External Knowledge API: records of the collection `knowledge_id`; its error shape."""
    from ailab.knowledge import KnowledgeError

    svc = state.knowledge_service()
    coll = svc.catalog.collection(body.knowledge_id)
    if coll is None or not decide(p, "knowledge.use", project_id=coll.project_id):
        return JSONResponse({"error_code": 2001, "error_msg": "The knowledge does not exist"}, 404)
    try:
        hits = await svc.search(p, [coll], body.query, body.retrieval_setting.top_k)
    except KnowledgeError as exc:
        return JSONResponse({"error_code": 500, "error_msg": str(exc)}, exc.status)
    floor = body.retrieval_setting.score_threshold
    records = []
    for h in hits:
        score = max(0.0, min(1.0, h.dense if h.dense is not None else h.score))
        if score < floor:
            continue
        meta = h.public()
        records.append(
            {
                "content": h.text,
                "score": round(score, 6),
                "title": meta["title"] or meta["source"] or coll.name,
                "metadata": {"source": meta["source"], "chunk_id": h.chunk_id, "page": meta["page"]},
            }
        )
    return {"records": records}
