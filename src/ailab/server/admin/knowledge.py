"""Knowledge API under /v1/knowledge: collections (CRUD), documents (upload, list, delete), search, ask,
and an OpenAI-compatible chat endpoint grounded in collections. Collections belong to a project: callers
act on the collections of their projects (`knowledge.use` to search and ask, `knowledge.manage` to change)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from ailab.access import Principal, decide, holds
from ailab.server.admin.deps import ApiError, allow, require
from ailab.server.admin.upload_form import DocumentsBody, read_upload

if TYPE_CHECKING:
    from ailab.knowledge import Collection, KnowledgeService
    from ailab.server.state import LabState


class CollectionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    project_id: str | None = None
    store: str | None = Field(default=None, max_length=100)  # an `ailab.stores` plugin name
    embedding_model: str | None = None
    dimension: int | None = Field(default=None, ge=1, le=65536)
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        from ailab.knowledge import store_names

        if value is not None and value not in store_names():
            raise ValueError(f"unknown store {value!r}: choose one of {', '.join(store_names())}")
        return value


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=10_000)
    k: int = Field(default=5, ge=1, le=100)
    filters: dict[str, Any] | None = None
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    # document: a document counts once and brings its best `per_document` chunks; chunk: chunks alone
    group: Literal["document", "chunk"] = "document"
    per_document: int = Field(default=1, ge=1, le=20)


class AskBody(BaseModel):
    question: str = Field(min_length=1, max_length=10_000)
    model: str | None = None
    k: int = Field(default=5, ge=1, le=50)
    filters: dict[str, Any] | None = None
    stream: bool = False


UPLOAD_SPEC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "application/json": {"schema": DocumentsBody.model_json_schema()},
        }
    }
}


@contextmanager
def _mapped() -> Iterator[None]:
    from ailab.knowledge import KnowledgeError

    try:
        yield
    except KnowledgeError as exc:
        raise ApiError(exc.status, str(exc), exc.code) from None


def _sse(events: AsyncIterator[dict[str, Any]], done: bool) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            yield b"data: " + orjson.dumps(event) + b"\n\n"
        if done:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _svc(state: LabState) -> KnowledgeService:
    return state.knowledge_service()


def _coll(state: LabState, name: str, p: Principal, permission: str) -> Collection:
    """The collection, if the caller may act on it (its project's members; administrators)."""
    from ailab.knowledge import KnowledgeError, missing_collection

    with _mapped():
        c = _svc(state).get(name)
        if not decide(p, "knowledge.use", project_id=c.project_id):  # hidden: the same 404 as a missing one
            raise KnowledgeError(missing_collection(name), 404, "not_found")
    allow(p, permission, project_id=c.project_id)
    if c.project_id is None and permission == "knowledge.manage":  # lab-wide: not any project's to change
        allow(p, "knowledge.manage.global")
    return c


def router(state: LabState) -> APIRouter:
    # Like /v1, a JSON body needs no Content-Type header (the session cookie is SameSite=strict, so a
    # cross-site form cannot ride on it).
    r = APIRouter(prefix="/v1/knowledge", tags=["knowledge"], strict_content_type=False)
    _collection_routes(r, state)
    _document_routes(r, state)
    _query_routes(r, state)
    return r


def _collection_routes(r: APIRouter, state: LabState) -> None:
    use = require(state, "knowledge.use")
    manage = require(state, "knowledge.manage")

    def svc() -> KnowledgeService:
        return _svc(state)

    def coll(name: str, p: Principal, permission: str) -> Collection:
        return _coll(state, name, p, permission)

    @r.get("/collections", openapi_extra={"x-permission": "knowledge.use"})
    def list_collections(p: Principal = use) -> list[dict[str, Any]]:
        s = svc()
        return [s.describe(c) for c in s.visible(p)]

    @r.post("/collections", status_code=201, openapi_extra={"x-permission": "knowledge.manage"})
    async def create_collection(body: CollectionCreate, p: Principal = manage) -> dict[str, Any]:
        project = body.project_id or p.project_id
        if project is None and not holds(p, "knowledge.manage.global"):
            raise ApiError(
                400, "project_id: required (a collection belongs to one of your projects)", "invalid_value"
            )
        allow(p, "knowledge.manage", project_id=project)
        with _mapped():
            c = await svc().create_collection(
                p,
                body.name,
                project_id=project,
                store=body.store,
                embedding_model=body.embedding_model,
                dimension=body.dimension,
                description=body.description,
            )
        return svc().describe(c)

    @r.get("/collections/{name}", openapi_extra={"x-permission": "knowledge.use"})
    def get_collection(name: str, p: Principal = use) -> dict[str, Any]:
        return svc().describe(coll(name, p, "knowledge.use"))

    @r.delete("/collections/{name}", openapi_extra={"x-permission": "knowledge.manage"})
    async def delete_collection(name: str, p: Principal = manage) -> dict[str, Any]:
        c = coll(name, p, "knowledge.manage")
        await svc().delete_collection(c)
        return {"deleted": c.name}


async def _coll_for_upload(state: LabState, name: str, p: Principal) -> Collection:
    """The collection to upload into; a missing one is created (as `ailab ingest` does) when the caller
    may create it: in the key's project, or lab-wide with `knowledge.manage.global`."""
    from ailab.knowledge import missing_collection

    s = _svc(state)
    if s.catalog.collection(name) is not None:
        return _coll(state, name, p, "knowledge.manage")
    project = p.project_id
    if (project is None and holds(p, "knowledge.manage.global")) or (
        project is not None and decide(p, "knowledge.manage", project_id=project)
    ):
        with _mapped():
            return await s.create_collection(p, name, project_id=project)
    raise ApiError(404, missing_collection(name), "not_found")


def _document_routes(r: APIRouter, state: LabState) -> None:
    use = require(state, "knowledge.use")
    manage = require(state, "knowledge.manage")

    def svc() -> KnowledgeService:
        return _svc(state)

    def coll(name: str, p: Principal, permission: str) -> Collection:
        return _coll(state, name, p, permission)

    @r.get("/collections/{name}/documents", openapi_extra={"x-permission": "knowledge.use"})
    def list_documents(
        name: str, source_prefix: str | None = None, p: Principal = use
    ) -> list[dict[str, Any]]:
        return svc().catalog.documents(coll(name, p, "knowledge.use").id, source_prefix)

    @r.post(
        "/collections/{name}/documents",
        openapi_extra={"x-permission": "knowledge.manage", **UPLOAD_SPEC},
    )
    async def upload_documents(name: str, request: Request, p: Principal = manage) -> dict[str, Any]:
        import asyncio

        from ailab.knowledge import incoming_dir, keep_uploads

        c = await _coll_for_upload(state, name, p)
        s = svc()
        with incoming_dir(s.root) as folder:
            items = await read_upload(request, folder)
            with _mapped():
                report = await s.ingest_files(p, c, items)
            # Uploaded files are kept (knowledge/uploads/<collection>/<sha256>/<name>) so backups hold them.
            failed = {f["source"] for f in report.failed}
            await asyncio.to_thread(keep_uploads, s.root, c.name, items, failed)
        return report.as_dict()

    @r.delete(
        "/collections/{name}/documents/{document_id}", openapi_extra={"x-permission": "knowledge.manage"}
    )
    def delete_document(name: str, document_id: str, p: Principal = manage) -> dict[str, Any]:
        c = coll(name, p, "knowledge.manage")
        if svc().catalog.document(c.id, document_id) is None:
            raise ApiError(404, f"document {document_id!r} is not in collection {c.name!r}", "not_found")
        svc().delete_document(c, document_id)
        return {"deleted": document_id}


def _query_routes(r: APIRouter, state: LabState) -> None:
    use = require(state, "knowledge.use")

    def svc() -> KnowledgeService:
        return _svc(state)

    def coll(name: str, p: Principal, permission: str) -> Collection:
        return _coll(state, name, p, permission)

    @r.post("/collections/{name}/search", openapi_extra={"x-permission": "knowledge.use"})
    async def search(name: str, body: SearchBody, p: Principal = use) -> dict[str, Any]:
        c = coll(name, p, "knowledge.use")
        with _mapped():
            hits = await svc().search(
                p,
                [c],
                body.query,
                body.k,
                body.filters,
                body.mode,
                group=body.group,
                per_document=body.per_document,
            )
        reranked = any(h.rerank_score is not None for h in hits)
        out: dict[str, Any] = {"object": "list", "data": [h.public() for h in hits], "reranked": reranked}
        if reranked:
            out["rerank_model"] = svc().settings.rerank_model
        return out

    @r.post("/collections/{name}/ask", openapi_extra={"x-permission": "knowledge.use"}, response_model=None)
    async def ask(name: str, body: AskBody, p: Principal = use) -> dict[str, Any] | StreamingResponse:
        from ailab.knowledge import rag

        c = coll(name, p, "knowledge.use")
        args: dict[str, Any] = {"model": body.model, "k": body.k, "filters": body.filters}
        with _mapped():
            if body.stream:
                return _sse(rag.ask_stream(svc(), p, [c], body.question, **args), done=False)
            return await rag.ask(svc(), p, [c], body.question, **args)

    @r.post("/{names}/chat/completions", openapi_extra={"x-permission": "knowledge.use"}, response_model=None)
    async def chat_completions(names: str, request: Request, p: Principal = use) -> Any:
        """OpenAI-compatible: point an OpenAI client's base_url at /v1/knowledge/<a,b> and chat as usual."""
        from ailab.knowledge import rag

        colls = [coll(n, p, "knowledge.use") for n in names.split(",") if n]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not valid JSON", "invalid_json") from None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ApiError(400, "messages: required (a list)", "invalid_value")
        with _mapped():
            reply, stream = await rag.chat_completion(svc(), p, colls, body)
        return _sse(stream, done=True) if stream is not None else reply
