"""A Qdrant server stand-in on loopback: Qdrant's REST API (the calls the lab's store makes) in front of one
qdrant-client local-mode instance, so several lab processes share one set of collections as they would a
Qdrant server. No Qdrant server package exists for these machines (FACTS.md). Responses are the same
pydantic models local mode returns, in Qdrant's `{"result", "status", "time"}` envelope."""

from __future__ import annotations

from typing import Any

from qdrant_client import QdrantClient, models
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _ok(result: Any) -> Response:
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    return JSONResponse({"result": result, "status": "ok", "time": 0.0})


def qdrant_standin(api_key: str | None = None) -> Starlette:
    local = QdrantClient(location=":memory:")
    calls: list[str] = []

    def denied(request: Request) -> Response | None:
        calls.append(f"{request.method} {request.url.path}")
        if api_key and request.headers.get("api-key") != api_key:
            return JSONResponse({"status": {"error": "Must provide an API key"}}, 401)
        return None

    async def root(_: Request) -> Response:
        return JSONResponse({"title": "qdrant - vector search engine", "version": "1.20.0"})

    async def exists(request: Request) -> Response:
        return denied(request) or _ok({"exists": local.collection_exists(request.path_params["name"])})

    async def collection(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        name = request.path_params["name"]
        if request.method == "GET":
            if not local.collection_exists(name):
                return JSONResponse({"status": {"error": f"Collection `{name}` doesn't exist!"}}, 404)
            return _ok(local.get_collection(name))
        if request.method == "DELETE":
            return _ok(local.delete_collection(name))
        body = await request.json()
        vectors = models.VectorParams(**body["vectors"])
        return _ok(local.create_collection(name, vectors_config=vectors))

    async def upsert(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        points = [models.PointStruct(**p) for p in body["points"]]
        return _ok(local.upsert(request.path_params["name"], points=points, wait=True))

    async def delete(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        selector = models.PointIdsList(points=body["points"])
        return _ok(local.delete(request.path_params["name"], points_selector=selector, wait=True))

    async def query(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        req = models.QueryRequest(**await request.json())
        res = local.query_points(
            request.path_params["name"],
            query=req.query,  # type: ignore[arg-type]
            limit=req.limit or 10,
            query_filter=req.filter,
            with_payload=False,
        )
        return _ok(res)

    async def scroll(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        req = models.ScrollRequest(**await request.json())
        points, offset = local.scroll(
            request.path_params["name"],
            limit=req.limit or 10,
            offset=req.offset,
            with_vectors=bool(req.with_vector),
            with_payload=False,
        )
        return _ok({"points": [p.model_dump(mode="json") for p in points], "next_page_offset": offset})

    async def count(request: Request) -> Response:
        if (no := denied(request)) is not None:
            return no
        return _ok(local.count(request.path_params["name"], exact=True))

    async def readyz(_: Request) -> Response:
        return Response("all shards are ready", media_type="text/plain")

    app = Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/collections/{name}/exists", exists, methods=["GET"]),
            Route("/collections/{name}", collection, methods=["GET", "PUT", "DELETE"]),
            Route("/collections/{name}/points", upsert, methods=["PUT"]),
            Route("/collections/{name}/points/delete", delete, methods=["POST"]),
            Route("/collections/{name}/points/query", query, methods=["POST"]),
            Route("/collections/{name}/points/scroll", scroll, methods=["POST"]),
            Route("/collections/{name}/points/count", count, methods=["POST"]),
        ]
    )
    app.state.calls = calls
    return app
