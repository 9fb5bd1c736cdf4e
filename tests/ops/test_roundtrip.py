"""Acceptance: a backup taken while a real `ailab up` serves chat requests and an ingest runs, restored into
a fresh data dir, gives back identical users, keys, secrets (decrypted with the restored key), collections,
uploaded files and search results, and a ledger that is a consistent prefix of the source's."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx

from ailab.db import make_engine, sqlite_url
from ailab.ops.backup import create_backup, read_last
from ailab.ops.restore import restore_archive
from ailab.secrets.local import LocalStore
from tests.labproc import run_lab
from tests.ops.conftest import DOCS, assert_same_lab, client, populate, search_all, tables, write_lab


class Traffic:
    """Chat requests with a virtual key, and an ingest of many small uploads, until stopped."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.chats = 0
        self.ingested = 0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._chat), threading.Thread(target=self._ingest)]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _chat(self) -> None:
        c = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        while not self.stop.is_set():
            r = c.post(
                "/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
            )
            if r.status_code != 200:
                self.errors.append(r.text)
            self.chats += 1

    def _ingest(self) -> None:
        c = client(self.url)
        for i in range(400):
            if self.stop.is_set():
                return
            text = f"# Note {i}\n\nThe lab note number {i} talks about topic {i % 7} and nothing else.\n"
            r = c.post(
                "/v1/knowledge/collections/live/documents",
                json={"documents": [{"name": f"n{i}.md", "text": text}]},
            )
            if r.status_code != 200:
                self.errors.append(r.text)
            self.ingested += 1


def _catalog(data: Path) -> dict:
    db = sqlite3.connect(data / "knowledge" / "catalog.sqlite")
    try:
        return {
            "collections": db.execute("SELECT * FROM collections ORDER BY id").fetchall(),
            "documents": db.execute(
                "SELECT id, collection_id, content_hash FROM documents ORDER BY id"
            ).fetchall(),
            "chunks": db.execute("SELECT id, collection_id FROM chunks ORDER BY id").fetchall(),
        }
    finally:
        db.close()


def _vector_ids(data: Path, collection_id: str) -> set[int]:
    import numpy as np

    ids = np.fromfile(data / "knowledge" / "embedded" / f"c_{collection_id}" / "ids.i64", dtype=np.int64)
    return {int(i) for i in ids if i >= 0}


def test_backup_while_serving_restores_everything_into_a_fresh_data_dir(
    tmp_path: Path, openai_upstream
) -> None:
    src = write_lab(tmp_path, "src", openai_upstream.url, key_file=tmp_path / "keys" / "src.key")
    proc, url = run_lab(src.path, src.data_dir)
    try:
        c = client(url)
        made = populate(c)
        assert c.post("/v1/knowledge/collections", json={"name": "live"}).status_code == 201
        with Traffic(url, made["key"]) as traffic:
            while traffic.ingested < 3 or traffic.chats < 3:
                time.sleep(0.05)
            lines: list[str] = []
            result = create_backup(src, include_key=True, progress=lines.append)
            in_flight = traffic.threads[1].is_alive()
        assert in_flight, "the ingest finished before the backup: make it longer"
        assert not traffic.errors, traffic.errors[:3]
        expected_search = search_all(c)
    finally:
        proc.terminate()
        proc.wait(30)
    assert any("db/ailab.db" in line for line in lines)
    assert read_last(src) is not None and read_last(src)["ok"] is True
    source = tables(sqlite_url(src.data_dir))
    source_catalog = _catalog(src.data_dir)

    dst = write_lab(tmp_path, "dst", openai_upstream.url, key_file=tmp_path / "keys" / "dst.key")
    report = restore_archive(result.path, dst)
    assert report.previous is None  # a fresh data dir: nothing was replaced
    assert_same_lab(source, tables(sqlite_url(dst.data_dir)))

    # Secrets: the key came with the archive (--include-key) and decrypts the restored values.
    assert (tmp_path / "keys" / "dst.key").read_text() == (tmp_path / "keys" / "src.key").read_text()
    store = LocalStore(make_engine(sqlite_url(dst.data_dir)), key_file=str(tmp_path / "keys" / "dst.key"))
    assert store.get("OPENAI") == "sk-secret-one" and store.get("ANTHROPIC") == "sk-ant-two"

    # Knowledge: same collections; the live one is a consistent snapshot (every chunk has its vector).
    restored = _catalog(dst.data_dir)
    assert restored["collections"] == source_catalog["collections"]
    assert set(restored["documents"]) <= set(source_catalog["documents"])
    for coll in restored["collections"]:
        chunks = {cid for cid, col in restored["chunks"] if col == coll[0]}
        assert chunks == _vector_ids(dst.data_dir, coll[0]), coll[1]
    uploads = dst.data_dir / "knowledge" / "uploads" / "stable"
    assert sorted((p.name, p.read_bytes()) for p in uploads.glob("*/*")) == sorted(DOCS.items())

    proc, url = run_lab(dst.path, dst.data_dir)
    try:
        c = client(url)
        assert search_all(c) == expected_search
        hits = c.post(
            "/v1/knowledge/collections/live/search", json={"query": "lab note topic", "k": 5}
        ).json()
        docs = {d for d, col, _ in restored["documents"]}
        assert hits["data"] and all(h["document_id"] in docs for h in hits["data"])
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {made['key']}"},
            json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert chat.status_code == 200, chat.text  # the virtual key was restored
    finally:
        proc.terminate()
        proc.wait(30)
