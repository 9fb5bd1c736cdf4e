"""Document parsers: bytes → a title and sections (heading path, text, page). One function per format.

Formats: plain text, Markdown, HTML (lxml), PDF (pypdf), DOCX (python-docx), source code, CSV, JSON.
A parser raises ParseError with a reason a person can act on; the pipeline reports it and goes on.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

MAX_BYTES = 50 * 1024 * 1024
MAX_INFLATED = 200 * 1024 * 1024  # all the members of a DOCX archive, uncompressed


class ParseError(ValueError):
    """The document cannot be ingested; the message says why."""


@dataclass
class Section:
    heading: list[str]
    text: str
    page: int | None = None


@dataclass
class ParsedDoc:
    title: str
    kind: str
    sections: list[Section] = field(default_factory=list)

    def text_length(self) -> int:
        return sum(len(s.text.strip()) for s in self.sections)


CODE_EXT = frozenset(
    [
        "py",
        "pyi",
        "js",
        "ts",
        "tsx",
        "jsx",
        "go",
        "rs",
        "java",
        "kt",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "cs",
        "rb",
        "php",
        "sh",
        "bash",
        "sql",
        "swift",
        "scala",
        "lua",
        "r",
        "pl",
        "yaml",
        "yml",
        "toml",
        "ini",
        "cfg",
        "xml",
        "css",
        "scss",
    ]
)
TEXT_EXT = frozenset({"txt", "text", "rst", "log", ""})


def kind_of(name: str) -> str | None:
    ext = PurePath(name).suffix.lower().lstrip(".")
    if ext in ("md", "markdown"):
        return "markdown"
    if ext in ("html", "htm", "xhtml"):
        return "html"
    if ext in ("pdf", "docx", "csv", "json"):
        return ext
    if ext in CODE_EXT:
        return "code"
    if ext in TEXT_EXT:
        return "text"
    return None


def parse(name: str, data: bytes) -> ParsedDoc:
    kind = kind_of(name)
    if kind is None:
        raise ParseError(f"unsupported file type {PurePath(name).suffix or '(none)'}")
    if not data.strip():
        raise ParseError("empty file")
    if len(data) > MAX_BYTES:
        raise ParseError(f"file larger than {MAX_BYTES // 2**20} MiB")
    title = PurePath(name).stem
    doc = PARSERS[kind](data, title)
    doc.kind = kind
    if doc.text_length() == 0:
        raise ParseError("no text could be extracted")
    return doc


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ParseError("binary content in a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_text(data: bytes, title: str) -> ParsedDoc:
    return ParsedDoc(title, "text", [Section([], _decode(data))])


def parse_code(data: bytes, title: str) -> ParsedDoc:
    return ParsedDoc(title, "code", [Section([], _decode(data))])


# No two adjacent parts of a pattern may match the same characters (`\s*#*\s*` after a lazy `.+?` made a
# 2 KB line take seconds: cubic backtracking); the closing `#`s are stripped without a regex.
_MD_HEADING = re.compile(r"(#{1,6})[ \t]+(\S.*)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def parse_markdown(data: bytes, title: str) -> ParsedDoc:
    sections: list[Section] = []
    path: list[str] = []
    lines: list[str] = []
    first_heading: str | None = None
    in_fence = False
    for line in _decode(data).splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _MD_HEADING.match(line)
        text = _heading_text(m.group(2)) if m is not None else ""
        if m is None or not text:
            lines.append(line)
            continue
        sections.append(Section(list(path), "\n".join(lines)))
        lines = []
        level = len(m.group(1))
        first_heading = first_heading or text
        path = [*path[: level - 1], text]
    sections.append(Section(list(path), "\n".join(lines)))
    kept = [s for s in sections if s.text.strip()]
    if not kept:  # only headings: each heading is its own text, not an "empty" document
        kept = [Section(s.heading[:-1], s.heading[-1]) for s in sections if s.heading]
    return ParsedDoc(first_heading or title, "markdown", kept)


def _heading_text(raw: str) -> str:
    """A heading's text without its optional closing sequence (`## Title ##`; `C#` keeps its `#`)."""
    text = raw.rstrip()
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        text = bare.rstrip()
    return text


def parse_pdf(data: bytes, title: str) -> ParsedDoc:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on malformed files become our report
    try:
        reader = PdfReader(io.BytesIO(data))
        meta_title = reader.metadata.get("/Title") if reader.metadata else None
        pages = [Section([], page.extract_text() or "", page=i + 1) for i, page in enumerate(reader.pages)]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"unreadable PDF: {type(exc).__name__}: {str(exc)[:200]}") from None
    return ParsedDoc(str(meta_title).strip() if meta_title else title, "pdf", pages)


def parse_docx(data: bytes, title: str) -> ParsedDoc:
    import docx

    try:
        _check_inflated(zipfile.ZipFile(io.BytesIO(data)), "DOCX")
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"unreadable DOCX: {type(exc).__name__}") from None
    sections: list[Section] = []
    path: list[str] = []
    lines: list[str] = []
    for para in document.paragraphs:
        style = para.style.name if para.style is not None else ""
        m = re.match(r"(?:Heading|Title)\s*(\d*)", style or "")
        if m and para.text.strip():
            sections.append(Section(list(path), "\n".join(lines)))
            lines = []
            level = int(m.group(1) or 1)
            path = [*path[: level - 1], para.text.strip()]
        else:
            lines.append(para.text)
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    sections.append(Section(list(path), "\n".join(lines)))
    core_title = document.core_properties.title
    return ParsedDoc(
        core_title or (path[0] if path else title), "docx", [s for s in sections if s.text.strip()]
    )


def _check_inflated(archive: zipfile.ZipFile, kind: str) -> None:
    """Refuse a zip (DOCX) that would inflate beyond MAX_INFLATED: a zip bomb fails alone, with the reason.
    The declared sizes are binding: zipfile stops inflating a member at its declared size."""
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_INFLATED:
        raise ParseError(
            f"{kind} inflates to {total / 2**20:.0f} MiB, over the limit of {MAX_INFLATED // 2**20} MiB "
            "(a compressed archive this large is refused as a possible zip bomb)"
        )


def parse_csv(data: bytes, title: str) -> ParsedDoc:
    text = _decode(data)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ParseError(f"invalid CSV: {exc}") from None
    if not rows:
        return ParsedDoc(title, "csv", [])
    header, body = rows[0], rows[1:]
    lines = ["; ".join(f"{h}: {v}" for h, v in zip(header, row, strict=False) if v) for row in body]
    return ParsedDoc(title, "csv", [Section([], "\n\n".join(lines) if body else ", ".join(header))])


def parse_json(data: bytes, title: str) -> ParsedDoc:
    try:
        obj = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg} at line {exc.lineno}") from None
    lines: list[str] = []
    _flatten(obj, "", lines)
    return ParsedDoc(title, "json", [Section([], "\n".join(lines))])


def _flatten(obj: Any, prefix: str, out: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
        if not obj:
            out.append(f"{prefix}: []")
    else:
        out.append(f"{prefix}: {obj}")


def parse_html(data: bytes, title: str) -> ParsedDoc:
    from ailab.knowledge.html import html_sections

    found_title, sections = html_sections(data)
    return ParsedDoc(found_title or title, "html", [Section(h, t) for h, t in sections])


PARSERS: dict[str, Callable[[bytes, str], ParsedDoc]] = {
    "text": parse_text,
    "code": parse_code,
    "markdown": parse_markdown,
    "html": parse_html,
    "pdf": parse_pdf,
    "docx": parse_docx,
    "csv": parse_csv,
    "json": parse_json,
}
