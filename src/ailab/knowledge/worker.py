"""Parse and chunk one document: runs in a worker (process or thread) while the main loop embeds."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ailab.knowledge.chunking import Chunk, approx_tokens, chunk_document
from ailab.knowledge.parsers import MAX_BYTES, ParseError, parse

_count: Any = None
COUNT_BATCH = 512
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")


def _counter() -> Any:
    """The embedder's own tokenizer counts chunk sizes (loaded once per worker); else an estimate."""
    global _count
    if _count is None:
        try:
            from ailab.knowledge.embedder import EmbedderUnavailable, load_tokenizer

            tok = load_tokenizer(max_tokens=100_000)

            def count(texts: list[str]) -> list[int]:
                # In slices, keeping only the lengths: a million encodings at once took over 1 GB.
                out: list[int] = []
                for at in range(0, len(texts), COUNT_BATCH):
                    out.extend(len(e.ids) - 2 for e in tok.encode_batch(texts[at : at + COUNT_BATCH]))
                return out

            _count = count
        except (EmbedderUnavailable, ImportError):
            _count = approx_tokens
    return _count


def warm_up() -> None:
    """Load what parsing needs (the tokenizer) before a worker's first job, outside its time limit."""
    _counter()


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
    if _PRIVATE_KEY.search(data):
        out.error = "contains a private key (-----BEGIN … PRIVATE KEY-----): never ingested"
        return out
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


def prepare_path(
    path: str,
    mtime: float | None,
    max_tokens: int,
    overlap: int,
    name: str | None = None,
    limit: int = MAX_BYTES,
) -> Prepared:
    """Read and prepare the file at `path`, known as `name` (default: its path); over `limit` bytes, it fails
    before it is read."""
    source = name or path
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                reason = f"file larger than the limit of {limit / 2**20:g} MiB per document"
                return Prepared(source, source, "", size, mtime, error=reason)
            data = fh.read()
    except OSError as exc:
        return Prepared(source, source, "", 0, mtime, error=f"cannot read: {exc.strerror}")
    return prepare(source, source, data, mtime, max_tokens, overlap)
