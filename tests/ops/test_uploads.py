"""Uploaded knowledge files are kept (so backups hold the originals): knowledge/uploads/<collection>/
<sha256>/<name>; a new version replaces the old, a failed one is not kept, deletes follow the document."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from tests.conftest import MASTER
from tests.knowledge.conftest import lab_config

H = {"Authorization": f"Bearer {MASTER}"}


def kept(data_dir: Path, collection: str = "docs") -> dict[str, bytes]:
    base = data_dir / "knowledge" / "uploads" / collection
    out = {}
    for p in base.glob("*/*"):
        assert p.parent.name == hashlib.sha256(p.read_bytes()).hexdigest()
        out[p.name] = p.read_bytes()
    return out


def test_uploads_are_kept_replaced_and_deleted_with_their_document(
    make_gateway, openai_upstream, tmp_path
) -> None:
    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg.pop("general_settings")
    gw = make_gateway(cfg)
    c = httpx.Client(base_url=gw.url, headers=H, timeout=30)
    assert c.post("/v1/knowledge/collections", json={"name": "docs"}).status_code == 201
    files = [
        ("files", ("a.md", b"# A\n\nFirst version of a.\n", "text/markdown")),
        ("files", ("bad.pdf", b"%PDF-1.4 broken", "application/pdf")),
    ]
    assert c.post("/v1/knowledge/collections/docs/documents", files=files).status_code == 200
    docs = {"documents": [{"name": "sub/b.md", "text": "# B\n\nNested name.\n"}]}
    assert c.post("/v1/knowledge/collections/docs/documents", json=docs).status_code == 200
    assert kept(gw.data_dir) == {
        "a.md": b"# A\n\nFirst version of a.\n",
        "sub%2Fb.md": b"# B\n\nNested name.\n",
    }

    files = [("files", ("a.md", b"# A\n\nSecond version of a.\n", "text/markdown"))]
    assert c.post("/v1/knowledge/collections/docs/documents", files=files).status_code == 200
    assert kept(gw.data_dir)["a.md"] == b"# A\n\nSecond version of a.\n"
    assert len(list((gw.data_dir / "knowledge" / "uploads" / "docs").iterdir())) == 2  # old one removed

    listed = c.get("/v1/knowledge/collections/docs/documents").json()
    doc = next(d for d in listed if d["source"] == "a.md")
    assert c.delete(f"/v1/knowledge/collections/docs/documents/{doc['id']}").status_code == 200
    assert set(kept(gw.data_dir)) == {"sub%2Fb.md"}
    assert c.delete("/v1/knowledge/collections/docs").status_code == 200
    assert not (gw.data_dir / "knowledge" / "uploads" / "docs").exists()
