"""A Qdrant server's collections through its snapshot API (the documented REST endpoints):

- `POST /collections/{name}/snapshots?wait=true` creates a snapshot and answers its name,
- `GET /collections/{name}/snapshots/{snapshot}` downloads it, `DELETE` the same path removes it,
- `POST /collections/{name}/snapshots/upload?priority=snapshot&wait=true` (multipart field `snapshot`)
  recovers the collection from an uploaded file, creating it if it does not exist.

Streams both ways with http.client, so a large snapshot never sits in memory.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit


class QdrantSnapshotError(RuntimeError):
    """The Qdrant server refused or failed a snapshot call; the message names the call."""


class QdrantSnapshots:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QdrantSnapshotError(f"qdrant url {url!r}: expected http(s)://host:port")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or 6333
        self.base = parts.path.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _conn(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.api_key:
            headers["api-key"] = self.api_key
        return headers

    def _path(self, collection: str, *rest: str) -> str:
        return "/".join([f"{self.base}/collections", quote(collection, safe=""), *rest])

    def _call(self, method: str, path: str, what: str, **kw: Any) -> Any:
        conn = self._conn()
        try:
            conn.request(method, path, headers=self._headers(kw.pop("headers", None)), **kw)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as exc:
            raise QdrantSnapshotError(
                f"{what}: cannot reach qdrant at {self.host}:{self.port}: {exc}"
            ) from None
        finally:
            conn.close()
        if resp.status >= 300:
            raise QdrantSnapshotError(f"{what}: qdrant answered {resp.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def create(self, collection: str) -> str:
        what = f"snapshot of qdrant collection {collection}"
        body = self._call("POST", self._path(collection, "snapshots") + "?wait=true", what)
        try:
            return str(body["result"]["name"])
        except (TypeError, KeyError):
            raise QdrantSnapshotError(f"{what}: unexpected answer {body!r}") from None

    def download(self, collection: str, name: str, dst: Path) -> None:
        what = f"download of snapshot {name} of {collection}"
        conn = self._conn()
        try:
            conn.request(
                "GET", self._path(collection, "snapshots", quote(name, safe="")), headers=self._headers()
            )
            resp = conn.getresponse()
            if resp.status != 200:
                raise QdrantSnapshotError(f"{what}: qdrant answered {resp.status}: {resp.read(300)!r}")
            with open(dst, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except OSError as exc:
            raise QdrantSnapshotError(f"{what}: {exc}") from None
        finally:
            conn.close()

    def delete(self, collection: str, name: str) -> None:
        path = self._path(collection, "snapshots", quote(name, safe=""))
        self._call("DELETE", path + "?wait=true", f"removing snapshot {name} of {collection}")

    def upload(self, collection: str, src: Path) -> None:
        """Recover `collection` from a snapshot file (the server's copy is replaced)."""
        boundary = "ailab-" + os.urandom(12).hex()
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; '
            f'filename="{collection}.snapshot"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(head) + src.stat().st_size + len(tail)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)}
        path = self._path(collection, "snapshots", "upload") + "?priority=snapshot&wait=true"
        with open(src, "rb") as fh:
            body = _chain(head, fh, tail)
            self._call("POST", path, f"recovering qdrant collection {collection}", body=body, headers=headers)


def _chain(head: bytes, fh: Any, tail: bytes) -> Any:
    yield head
    while chunk := fh.read(1 << 20):
        yield chunk
    yield tail
