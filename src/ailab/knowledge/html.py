"""HTML → sections split at headings (h1–h6), with the heading path; navigation and scripts dropped."""

from __future__ import annotations

import re
from typing import Any

from ailab.knowledge.parsers import ParseError

SKIP = frozenset({"script", "style", "noscript", "nav", "header", "footer", "template", "svg", "head"})
SKIP_CLASSES = frozenset({"navheader", "navfooter", "breadcrumb", "sidebar"})  # site chrome, not content
HEADINGS = {f"h{i}": i for i in range(1, 7)}
BLOCKS = frozenset(
    [
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "tr",
        "td",
        "th",
        "blockquote",
        "section",
        "article",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "figure",
        "figcaption",
        "caption",
        "tbody",
        "thead",
    ]
)


PARAGRAPHS = frozenset({"p", "pre", "table", "blockquote", "dl", "ul", "ol"})


class _Walker:
    def __init__(self) -> None:
        self.sections: list[tuple[list[str], str]] = []
        self.path: list[str] = []
        self.levels: list[int] = []
        self.buf: list[str] = []
        self.pre = 0

    def flush(self) -> None:
        paragraphs: list[str] = []
        current: list[str] = []
        for line in "".join(self.buf).split("\n"):
            line = " ".join(line.split())
            if line:
                current.append(line)
            elif current:  # a blank line ends a paragraph
                paragraphs.append("\n".join(current))
                current = []
        if current:
            paragraphs.append("\n".join(current))
        joined = "\n\n".join(paragraphs)
        if joined:
            self.sections.append((list(self.path), joined))
        self.buf = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        while self.levels and self.levels[-1] >= level:
            self.levels.pop()
            self.path.pop()
        self.levels.append(level)
        self.path.append(text)

    def text(self, value: str | None) -> None:
        """HTML whitespace is one space, except inside <pre> where lines matter."""
        if value:
            self.buf.append(value if self.pre else re.sub(r"\s+", " ", value))

    def walk(self, el: Any) -> None:
        tag = el.tag.rsplit("}", 1)[-1].lower() if isinstance(el.tag, str) else ""
        classes = (el.get("class") or "").split() if tag else []
        if not tag or tag in SKIP or SKIP_CLASSES.intersection(classes):
            self.text(el.tail)
            return
        if tag in HEADINGS:
            text = " ".join(el.text_content().split())
            if text:
                self.heading(HEADINGS[tag], text)
        else:
            block = tag in BLOCKS
            self.pre += tag == "pre"
            # Paragraph-like blocks end with a blank line, so the chunker sees paragraphs.
            self.buf.append("\n\n" if tag in PARAGRAPHS else "\n" if block else "")
            self.text(el.text)
            for child in el:
                self.walk(child)
            self.buf.append("\n\n" if tag in PARAGRAPHS else "\n" if block else "")
            self.pre -= tag == "pre"
        self.text(el.tail)


def html_sections(data: bytes) -> tuple[str | None, list[tuple[list[str], str]]]:
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.document_fromstring(data)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ParseError(f"unreadable HTML: {exc}") from None
    title_el = root.find(".//title")
    title = " ".join(title_el.text_content().split()) if title_el is not None else None
    body = root.find("body")
    walker = _Walker()
    walker.walk(body if body is not None else root)
    walker.flush()
    return title or None, walker.sections
