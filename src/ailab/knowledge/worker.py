"""Parse and chunk one document: runs in a worker (process or thread) while the main loop embeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ailab.knowledge.chunking import Chunk, approx_tokens, chunk_document
from ailab.knowledge.parsers import ParseError, parse

_count: Any = None


def _counter() -> Any:
    """The embedder's own tokenizer counts chunk sizes (loaded once per worker); else an estimate."""
    global _count
    if _count is None:
        try:
            from ailab.knowledge.embedder import EmbedderUnavailable, load_tokenizer

            tok = load_tokenizer(max_tokens=100_000)
            _count = lambda texts: [len(e.ids) - 2 for e in tok.encode_batch(texts)]  # noqa: E731
        except (EmbedderUnavailable, ImportError):
            _count = approx_tokens
    return _count


@dataclass
class Prepared:
    source: str
    name: str
    content_hash: str
    size: int
    mtime: float | None
    title: str = ""
    kind: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare(
    source: str, name: str, data: bytes, mtime: float | None, max_tokens: int, overlap: int
) -> Prepared:
    out = Prepared(source, name, content_hash(data), len(data), mtime)
    try:
        doc = parse(name, data)
        out.title, out.kind = doc.title, doc.kind
        out.chunks = chunk_document(doc, _counter(), max_tokens, overlap)
        if not out.chunks:
            out.error = "no text could be extracted"
    except ParseError as exc:
        out.error = str(exc)
    except (RecursionError, MemoryError, UnicodeError, ValueError, KeyError, TypeError, OSError) as exc:
        # A parser library failing on a malformed file: report it and go on with the rest.
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


def prepare_path(source: str, mtime: float | None, max_tokens: int, overlap: int) -> Prepared:
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Prepared(source, source, "", 0, mtime, error=f"cannot read: {exc.strerror}")
    return prepare(source, source, data, mtime, max_tokens, overlap)
