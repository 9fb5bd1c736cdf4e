"""Vector stores in a backup: a Qdrant server's collections through its snapshot API, the files of
Qdrant's local mode and of Milvus Lite.

No Qdrant server can run here, so `FakeQdrant` is a loopback server speaking exactly the documented
snapshot endpoints the backup uses (create, download, delete, recover from an upload), with an api-key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ailab.knowledge.catalog import Catalog, Collection
from ailab.ops.archive import verify_archive
from ailab.ops.backup import create_backup
from ailab.ops.restore import RestoreError, restore_archive
from ailab.ops.stores import StoreLocations
from tests.ops.conftest import small_lab, tree
from tests.upstreams.harness import ServerThread

API_KEY = "qdrant-key-123"


class FakeQdrant:
    def __init__(self) -> None:
        self.collections: dict[str, dict[str, list[float]]] = {}
        self.snapshots: dict[tuple[str, str], bytes] = {}
        self.calls: list[str] = []

    def app(self) -> Starlette:
        base = "/collections/{name}/snapshots"
        return Starlette(
            routes=[
                Route(base, self.create, methods=["POST"]),
                Route(base + "/upload", self.upload, methods=["POST"]),
                Route(base + "/{snap}", self.download, methods=["GET"]),
                Route(base + "/{snap}", self.delete, methods=["DELETE"]),
            ]
        )

    def _denied(self, request: Request) -> Response | None:
        self.calls.append(f"{request.method} {request.url.path}")
        if request.headers.get("api-key") != API_KEY:
            return JSONResponse({"status": {"error": "Must provide an API key"}}, status_code=401)
        return None

    @staticmethod
    def _ok(result: object) -> JSONResponse:
        return JSONResponse({"result": result, "status": "ok", "time": 0.001})

    async def create(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        name = request.path_params["name"]
        if name not in self.collections:
            return JSONResponse({"status": {"error": f"Collection `{name}` doesn't exist!"}}, status_code=404)
        data = json.dumps(self.collections[name]).encode()
        snap = f"{name}-1-2026-11-24-10-00-00.snapshot"
        self.snapshots[(name, snap)] = data
        return self._ok({"name": snap, "creation_time": "2026-11-24T10:00:00", "size": len(data)})

    async def download(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        key = (request.path_params["name"], request.path_params["snap"])
        if key not in self.snapshots:
            return JSONResponse({"status": {"error": "Snapshot not found"}}, status_code=404)
        return Response(self.snapshots[key], media_type="application/octet-stream")

    async def delete(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        self.snapshots.pop((request.path_params["name"], request.path_params["snap"]), None)
        return self._ok(True)

    async def upload(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        assert request.query_params.get("priority") == "snapshot"
        form = await request.form()
        upload = form["snapshot"]
        assert not isinstance(upload, str)
        self.collections[request.path_params["name"]] = json.loads(await upload.read())
        return self._ok(True)


@pytest.fixture
def qdrant():
    fake = FakeQdrant()
    server = ServerThread(fake.app()).start()
    yield fake, server.url
    server.stop()


def _with_qdrant_collection(loaded) -> str:
    coll = Collection("q1", "qnotes", None, "qdrant", "embed", 4, 200, 32, 0, "test")
    Catalog(loaded.data_dir / "knowledge" / "catalog.sqlite").add_collection(coll)
    return coll.namespace


def test_qdrant_server_collections_go_through_snapshots(tmp_path: Path, qdrant) -> None:
    fake, url = qdrant
    stores = {"knowledge": {"stores": {"qdrant": {"url": url, "api_key": API_KEY}}}}
    src = small_lab(tmp_path, "src", **stores)
    ns = _with_qdrant_collection(src)
    points = {"1": [1.0, 0.0, 0.0, 0.0], "2": [0.0, 1.0, 0.0, 0.0]}
    fake.collections[ns] = points
    result = create_backup(src, out=tmp_path / "q.tar.gz")
    member = verify_archive(result.path).member(f"qdrant-snapshots/{ns}.snapshot")
    assert member is not None and member.kind == "qdrant-snapshot"
    assert fake.snapshots == {}, "the server-side snapshot is removed once downloaded"

    fake.collections.clear()  # a new, empty Qdrant server
    dst = small_lab(tmp_path, "dst", **stores)
    restore_archive(result.path, dst)
    assert fake.collections == {ns: points}
    assert f"POST /collections/{ns}/snapshots/upload" in fake.calls


def test_snapshots_need_a_qdrant_server_on_the_target(tmp_path: Path, qdrant) -> None:
    fake, url = qdrant
    src = small_lab(tmp_path, "src", knowledge={"stores": {"qdrant": {"url": url, "api_key": API_KEY}}})
    fake.collections[_with_qdrant_collection(src)] = {}
    archive = create_backup(src, out=tmp_path / "q.tar.gz").path
    dst = small_lab(tmp_path, "dst")
    before = tree(dst.data_dir)
    with pytest.raises(RestoreError, match="Qdrant server snapshots but the target lab has no Qdrant server"):
        restore_archive(archive, dst)
    assert tree(dst.data_dir) == before


def test_a_wrong_api_key_fails_the_backup_and_says_so(tmp_path: Path, qdrant) -> None:
    fake, url = qdrant
    src = small_lab(tmp_path, "src", knowledge={"stores": {"qdrant": {"url": url, "api_key": "wrong"}}})
    fake.collections[_with_qdrant_collection(src)] = {}
    with pytest.raises(Exception, match="qdrant answered 401"):
        create_backup(src, out=tmp_path / "q.tar.gz")
    assert not (tmp_path / "q.tar.gz").exists()


def test_qdrant_local_mode_files_round_trip(tmp_path: Path) -> None:
    from ailab.knowledge.stores.qdrant import QdrantStore

    src = small_lab(tmp_path, "src", knowledge={"stores": {"qdrant": {"path": str(tmp_path / "qlocal")}}})
    store = QdrantStore(path=str(StoreLocations.of(src).qdrant_local))
    store.create("c_local", 4)
    store.upsert("c_local", [7, 8], np.eye(2, 4, dtype=np.float32))
    store.close()
    archive = create_backup(src, out=tmp_path / "l.tar.gz").path
    assert any(m.path.startswith("stores/qdrant-local/") for m in verify_archive(archive).members)
    dst = small_lab(tmp_path, "dst")  # default location: <data>/knowledge/qdrant
    restore_archive(archive, dst)
    store = QdrantStore(path=str(dst.data_dir / "knowledge" / "qdrant"))
    try:
        assert store.count("c_local") == 2
        assert store.search("c_local", np.eye(1, 4, 1, dtype=np.float32)[0], 1)[0][0] == 8
    finally:
        store.close()


def test_milvus_lite_round_trip(tmp_path: Path) -> None:
    from ailab.knowledge.stores.milvus import MilvusStore

    src = small_lab(tmp_path, "src")
    path = StoreLocations.of(src).milvus_lite
    assert path == src.data_dir / "knowledge" / "milvus.db"
    store = MilvusStore(str(path))
    store.create("c_m", 4)
    store.upsert("c_m", [5, 6], np.eye(2, 4, dtype=np.float32))
    store.close()
    archive = create_backup(src, out=tmp_path / "m.tar.gz").path
    assert any(m.kind == "milvus-lite" for m in verify_archive(archive).members)
    dst = small_lab(
        tmp_path, "dst", knowledge={"stores": {"milvus": {"url": str(tmp_path / "elsewhere.db")}}}
    )
    restore_archive(archive, dst)
    store = MilvusStore(str(tmp_path / "elsewhere.db"))
    try:
        assert store.count("c_m") == 2
    finally:
        store.close()
