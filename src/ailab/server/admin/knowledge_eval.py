"""Retrieval evaluation over HTTP: `POST /v1/knowledge/collections/{name}/eval` scores labelled questions
(as `ailab knowledge eval` does) and keeps the run; `GET .../evals` lists kept runs, `GET .../evals/{id}`
returns one. Running an evaluation keeps a record, so it needs `knowledge.manage`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ailab.access import Principal
from ailab.server.admin.deps import ApiError, require
from ailab.server.admin.knowledge import _coll, _mapped, _svc

if TYPE_CHECKING:
    from ailab.server.state import LabState


class EvalQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=10_000)
    sources: list[str] = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, max_length=200)


class EvalBody(BaseModel):
    questions: list[EvalQuestion] = Field(min_length=1, max_length=5000)
    name: str | None = Field(default=None, max_length=200, description="the question set's name")
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    group: Literal["document", "chunk"] = "document"
    filters: dict[str, Any] | None = None
    keep: bool = True
    compare: str | None = Field(default=None, max_length=40, description="a kept run's id, or 'last'")
    labels: dict[str, str] | None = None


def router(state: LabState) -> APIRouter:
    from ailab.knowledge import evaluation as ev

    r = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
    use = require(state, "knowledge.use")
    manage = require(state, "knowledge.manage")

    @r.post("/collections/{name}/eval", openapi_extra={"x-permission": "knowledge.manage"})
    async def evaluate(name: str, body: EvalBody, p: Principal = manage) -> dict[str, Any]:
        svc, coll = _svc(state), _coll(state, name, p, "knowledge.manage")
        qs = [ev.Question(q.question.strip(), tuple(q.sources), q.id) for q in body.questions]
        opts = ev.Options(mode=body.mode, group=body.group, filters=body.filters, extra=body.labels or {})
        with _mapped():
            run = await ev.evaluate(svc, p, coll, qs, opts, body.name)
        try:
            if body.keep:
                run = await asyncio.to_thread(ev.save, svc, coll, run)
            if body.compare:
                run["comparison"] = ev.compare(ev.previous(svc, coll, body.compare, run), run)
        except ev.EvalError as exc:
            raise ApiError(404, str(exc), "not_found") from None
        return run

    @r.get("/collections/{name}/evals", openapi_extra={"x-permission": "knowledge.use"})
    def list_evals(name: str, p: Principal = use) -> dict[str, Any]:
        svc, coll = _svc(state), _coll(state, name, p, "knowledge.use")
        return {"object": "list", "data": ev.list_runs(svc, coll)}

    @r.get("/collections/{name}/evals/{run_id}", openapi_extra={"x-permission": "knowledge.use"})
    def get_eval(name: str, run_id: str, p: Principal = use) -> dict[str, Any]:
        svc, coll = _svc(state), _coll(state, name, p, "knowledge.use")
        try:
            return ev.load_run(svc, coll, run_id)
        except ev.EvalError as exc:
            raise ApiError(404, str(exc), "not_found") from None

    return r
