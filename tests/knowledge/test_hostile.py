"""Hostile documents against a real `ailab up`: a zip bomb DOCX, a text of a million short lines and a
Markdown line that made the old heading pattern backtrack for seconds. Each fails alone or is ingested,
the rest of the batch goes on, /health/live keeps answering, and the lab's memory stays bounded."""

from __future__ import annotations

import io
import threading
import zipfile

import docx
import httpx
import pytest

from tests.conftest import MASTER
from tests.server.rawhttp import lab_with_fake_embeddings, memory_kb, stop

H = {"Authorization": f"Bearer {MASTER}"}
MB = 2**20


def docx_bomb(inflated_mb: int = 300) -> bytes:
    """A valid DOCX whose word/document.xml inflates to `inflated_mb` MiB (a few hundred KiB on disk)."""
    src = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("seed")
    d.save(src)
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "word/document.xml":
                zout.writestr(info, zin.read(info))
                continue
            xml = zin.read(info).decode()
            head, tail = xml.split("<w:body>", 1)
            run = "<w:p><w:r><w:t>" + "boom " * 2000 + "</w:t></w:r></w:p>"
            with zout.open("word/document.xml", "w", force_zip64=True) as fh:
                fh.write((head + "<w:body>").encode())
                for _ in range(inflated_mb * MB // len(run)):
                    fh.write(run.encode())
                fh.write(tail.encode())
    return out.getvalue()


def backtracking_markdown(n: int = 2048) -> bytes:
    return ("# a" + " " * n + "b\n\nThe heading above is one long line.\n").encode()


@pytest.fixture
def lab(tmp_path, openai_upstream):
    proc, url = lab_with_fake_embeddings(tmp_path, openai_upstream.url)
    try:
        with httpx.Client(base_url=url, headers=H, timeout=120) as c:
            assert c.post("/v1/knowledge/collections", json={"name": "docs"}).status_code == 201
        yield proc, url
    finally:
        stop(proc)


def test_hostile_documents_fail_alone_with_bounded_memory(lab):
    proc, url = lab
    bomb = docx_bomb()
    assert len(bomb) < 2 * MB
    files = [
        ("files", ("bomb.docx", bomb, "application/octet-stream")),
        ("files", ("lines.txt", b"a\n" * 1_000_000, "text/plain")),
        ("files", ("slow.md", backtracking_markdown(), "text/markdown")),
        ("files", ("good.md", b"# Vacuum\n\nVACUUM reclaims storage.\n", "text/markdown")),
    ]
    peak_before, rss_before = memory_kb(proc.pid), memory_kb(proc.pid, "VmRSS")
    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        result["r"] = httpx.post(
            f"{url}/v1/knowledge/collections/docs/documents", files=files, headers=H, timeout=600
        )

    t = threading.Thread(target=upload)
    t.start()
    live = []
    while t.is_alive():  # the lab keeps answering while it parses
        live.append(httpx.get(f"{url}/health/live", timeout=5).status_code)
        t.join(0.2)
    assert live and set(live) == {200}
    r = result["r"]
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 3, report
    assert [f["source"] for f in report["failed"]] == ["bomb.docx"]
    assert "zip bomb" in report["failed"][0]["reason"]
    docs = httpx.get(f"{url}/v1/knowledge/collections/docs/documents", headers=H).json()
    assert {d["source"] for d in docs} == {"lines.txt", "slow.md", "good.md"}
    hits = httpx.post(
        f"{url}/v1/knowledge/collections/docs/search",
        json={"query": "long line heading", "mode": "sparse"},
        headers=H,
    ).json()
    assert any(h["source"] == "slow.md" for h in hits["data"])
    grown = (memory_kb(proc.pid) - peak_before) / 1024
    kept = (memory_kb(proc.pid, "VmRSS") - rss_before) / 1024
    assert grown <= 256, f"peak RSS grew by {grown:.0f} MiB"
    assert kept <= 128, f"RSS kept {kept:.0f} MiB after the request"


def test_markdown_headings_parse_in_linear_time():
    """An 8 KB heading line (minutes with the old pattern) parses at once, in a process we can bound."""
    import subprocess
    import sys

    code = (
        "from ailab.knowledge.parsers import parse\n"
        "d = parse('a.md', ('# a' + ' ' * 8192 + 'b ##\\n\\ntext\\n\\n## C# ##\\n\\nmore\\n').encode())\n"
        "print([s.heading for s in d.sections])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[['a' + ' ' * 8192 + 'b'], ['a' + ' ' * 8192 + 'b', 'C#']]".replace(
        "'a' + ' ' * 8192 + 'b'", repr("a" + " " * 8192 + "b")
    )


def test_heading_closing_sequence():
    from ailab.knowledge.parsers import parse

    doc = parse("a.md", b"# Title ##\n\nx\n\n## C#\n\ny\n\n#nohead\n\n###   Spaced   ###   \n\nz\n")
    assert [s.heading for s in doc.sections] == [["Title"], ["Title", "C#"], ["Title", "C#", "Spaced"]]
    assert "#nohead" in doc.sections[1].text


@pytest.fixture
def strict_lab(tmp_path, openai_upstream):
    proc, url = lab_with_fake_embeddings(tmp_path, openai_upstream.url, parse_timeout=1, parse_memory_mb=256)
    try:
        with httpx.Client(base_url=url, headers=H, timeout=120) as c:
            assert c.post("/v1/knowledge/collections", json={"name": "docs"}).status_code == 201
        yield proc, url
    finally:
        stop(proc)


def test_a_document_over_the_parse_limits_fails_and_the_next_is_parsed(strict_lab):
    """Four million HTML elements take the parser far beyond 1 s (and 256 MiB): its worker is killed,
    that file fails with the reason, a fresh worker parses the next file."""
    _, url = strict_lab
    files = [
        (
            "files",
            ("first.md", b"# Wal\n\nWrite-ahead logging.\n", "text/markdown"),
        ),  # a new worker's warm-up
        ("files", ("huge.html", b"<html><body>" + b"<p>x</p>" * 4_000_000 + b"</body></html>", "text/html")),
        ("files", ("good.md", b"# Vacuum\n\nVACUUM reclaims storage.\n", "text/markdown")),
    ]
    r = httpx.post(f"{url}/v1/knowledge/collections/docs/documents", files=files, headers=H, timeout=300)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 2 and [f["source"] for f in report["failed"]] == ["huge.html"]
    assert "stopped" in report["failed"][0]["reason"]
    assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
