"""Body limits off the hot path, against a real `ailab up`: the admin API (unauthenticated login included),
knowledge JSON and multipart uploads answer 413 over the limit, declared or chunked, before the body is read
whole; uploads are spooled to disk, so the lab's peak memory stays bounded whatever is sent."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import MASTER
from tests.server.rawhttp import lab_with_fake_embeddings, memory_kb, send_chunked, stop

H = {"Authorization": f"Bearer {MASTER}"}
MB = 2**20


@pytest.fixture
def lab(tmp_path, openai_upstream):
    proc, url = lab_with_fake_embeddings(tmp_path, openai_upstream.url, max_upload_mb=150, max_file_mb=4)
    try:
        with httpx.Client(base_url=url, headers=H, timeout=120) as c:
            assert c.post("/v1/knowledge/collections", json={"name": "docs"}).status_code == 201
        yield proc, url
    finally:
        stop(proc)


def test_large_bodies_are_413_and_memory_stays_bounded(lab):
    proc, url = lab
    before = memory_kb(proc.pid)
    c = httpx.Client(base_url=url, timeout=120)
    big = b'{"name": "' + b"x" * (120 * MB) + b'"}'
    for path in ("/api/keys", "/api/auth/login", "/v1/knowledge/collections/docs/search"):
        r = c.post(path, content=big, headers={**H, "Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", (path, r.text)
    login = c.post("/api/auth/login", json={"username": "admin", "password": "p" * (60 * MB)})
    assert login.status_code == 413, login.text  # refused for its size, before any password check
    docs = b'{"documents": [{"name": "a.txt", "text": "' + b"y" * (120 * MB) + b'"}]}'
    r = c.post("/v1/knowledge/collections/docs/documents", content=docs, headers=H)
    assert r.status_code == 413, r.text
    files = {"files": ("big.txt", b"z" * (200 * MB), "text/plain")}
    r = c.post("/v1/knowledge/collections/docs/documents", files=files, headers=H)
    assert r.status_code == 413, r.text
    part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
    for path, ctype, prefix in (
        ("/api/auth/login", "application/json", b""),
        ("/api/keys", "application/json", b""),
        ("/v1/knowledge/collections/docs/documents", "application/json", b""),
        ("/v1/knowledge/collections/docs/documents", "multipart/form-data; boundary=b", part),
    ):
        answer = send_chunked(url, path, 200 * MB, {"Content-Type": ctype}, prefix=prefix)
        assert answer.status in (413, None) and answer.sent < 200 * MB, (path, answer.raw[:300])
        assert answer.status == 413 or answer.sent < 20 * MB
    assert c.get("/health/live").status_code == 200
    grown = (memory_kb(proc.pid) - before) / 1024
    assert grown < 100, f"peak RSS grew by {grown:.0f} MiB"


def test_uploads_stream_to_disk_with_per_file_limit(lab):
    proc, url = lab
    before = memory_kb(proc.pid)
    files = [("files", (f"big{i}.txt", b"w " * (20 * MB), "text/plain")) for i in range(3)]
    files.append(("files", ("small.md", b"# Vacuum\n\nVACUUM reclaims storage.\n", "text/markdown")))
    r = httpx.post(f"{url}/v1/knowledge/collections/docs/documents", files=files, headers=H, timeout=300)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 1
    assert sorted(f["source"] for f in report["failed"]) == ["big0.txt", "big1.txt", "big2.txt"]
    assert all("4 MiB" in f["reason"] for f in report["failed"])
    grown = (memory_kb(proc.pid) - before) / 1024
    assert grown < 100, f"peak RSS grew by {grown:.0f} MiB for a 120 MiB upload"
