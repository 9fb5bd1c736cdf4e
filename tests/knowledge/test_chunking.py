"""Parsing and chunking: heading paths, paragraph boundaries, size limits, overlap, tiny sections merged."""

from __future__ import annotations

from ailab.knowledge.chunking import approx_tokens, chunk_document
from ailab.knowledge.parsers import ParseError, parse


def test_long_sections_split_with_overlap_and_keep_their_heading():
    words = " ".join(f"w{i}" for i in range(600))
    doc = parse("a.md", f"# Top\n\n## Part\n\n{words}\n".encode())
    chunks = chunk_document(doc, approx_tokens, max_tokens=100, overlap=20)
    assert len(chunks) > 5 and all(c.heading == ["Top", "Part"] for c in chunks)
    assert all(approx_tokens([c.text])[0] <= 100 + 10 for c in chunks)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert second[0] in first  # the second chunk starts inside the first one: overlap
    assert [c.ord for c in chunks] == list(range(len(chunks)))


def test_tiny_sections_are_merged_and_named():
    doc = parse("a.md", b"# Guide\n\nShort intro.\n\n## Install\n\nRun the installer.\n")
    (chunk,) = chunk_document(doc, approx_tokens, max_tokens=200)
    assert chunk.heading == ["Guide"] and "Install\nRun the installer." in chunk.text


def test_html_paragraphs_code_and_chrome():
    html = (
        b"<html><head><title>T</title><style>x{}</style></head><body><div class='navfooter'>Next</div>"
        b"<h1>Top</h1><p>one\ntwo   three</p><pre>a  b\nc</pre><h2>Sub</h2><p>four</p></body></html>"
    )
    doc = parse("x.html", html)
    assert doc.title == "T"
    assert [(s.heading, s.text) for s in doc.sections] == [
        (["Top"], "one two three\n\na b\nc"),
        (["Top", "Sub"], "four"),
    ]


def test_unsupported_and_binary_files_are_refused():
    for name, data, reason in (
        ("a.exe", b"MZ", "unsupported"),
        ("a.txt", b"\x00\x01\x02", "binary"),
        ("a.json", b"{bad", "invalid JSON"),
        ("a.txt", b"   \n", "empty"),
    ):
        try:
            parse(name, data)
        except ParseError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(name)


def test_csv_and_json_become_readable_text():
    assert "name: ada; lang: en" in parse("t.csv", b"name,lang\nada,en\n").sections[0].text
    assert "a.b[0]: 1" in parse("t.json", b'{"a": {"b": [1]}}').sections[0].text


def test_a_markdown_file_that_is_only_headings_is_its_headings():
    from ailab.knowledge.parsers import parse

    doc = parse("todo.md", b"# Release checklist\n\n## Later\n")
    assert doc.title == "Release checklist"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ([], "Release checklist"),
        (["Release checklist"], "Later"),
    ]
