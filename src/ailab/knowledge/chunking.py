"""Structure-aware chunking by tokens: chunks never cross a section (heading) boundary, paragraphs stay
whole where they fit, long paragraphs split at sentences (then words), and consecutive chunks of a section
overlap by about `overlap` tokens. Each chunk keeps its section's heading path and page.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ailab.knowledge.parsers import ParsedDoc

CountTokens = Callable[[list[str]], list[int]]
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")


@dataclass
class Chunk:
    text: str
    heading: list[str]
    page: int | None
    ord: int = 0

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def embed_text(self, title: str) -> str:
        """What the embedder reads: the title and heading path give a chunk the context its text lacks."""
        context = " › ".join(dict.fromkeys([title, *self.heading]))
        return f"{context}\n\n{self.text}" if context else self.text


def approx_tokens(texts: list[str]) -> list[int]:
    """A tokenizer-free count (~1.3 tokens a word), for callers without the model's tokenizer."""
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


def _pieces(text: str) -> list[str]:
    """Paragraphs (blank-line separated); a text without blank lines falls back to its lines."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paras) <= 1 and text.count("\n") > 3:
        paras = [p.strip() for p in text.split("\n") if p.strip()]
    return paras


def _split_long(piece: str, n_tokens: int, limit: int) -> list[str]:
    """Split a piece over `limit` tokens at sentences, then at words, into parts of about `limit` tokens."""
    sentences = _SENTENCE.split(piece)
    words_per_token = max(1, len(piece.split())) / max(1, n_tokens)
    max_words = max(8, int(limit * words_per_token))
    parts: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        words = sentence.split()
        while len(words) > max_words:
            if current:
                parts.append(" ".join(current))
                current = []
            parts.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if len(current) + len(words) > max_words and current:
            parts.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        parts.append(" ".join(current))
    return parts


def _overlapped(parts: list[str], piece: str, n_tokens: int, overlap: int) -> list[str]:
    """Prefix each part with the last ~`overlap` tokens of the one before it (a split mid-paragraph)."""
    words = max(0, int(overlap * len(piece.split()) / max(1, n_tokens)))
    if not words:
        return parts
    tails = (" ".join(prev.split()[-words:]) for prev in parts[:-1])
    return [parts[0], *(f"{tail} {cur}" for tail, cur in zip(tails, parts[1:], strict=True))]


def chunk_document(
    doc: ParsedDoc, count: CountTokens, max_tokens: int = 200, overlap: int = 32
) -> list[Chunk]:
    sized: list[tuple[Chunk, int]] = []
    for section in doc.sections:
        pieces = _pieces(section.text)
        if not pieces:
            continue
        units: list[tuple[str, int]] = []
        for piece, size in zip(pieces, count(pieces), strict=True):
            if size <= max_tokens:
                units.append((piece, size))
            else:
                parts = _overlapped(_split_long(piece, size, max_tokens - overlap), piece, size, overlap)
                units.extend(zip(parts, count(parts), strict=True))
        for text, n in _pack(units, max_tokens, overlap):
            sized.append((Chunk(text, section.heading, section.page), n))
    out = _merge_small(sized, max_tokens)
    for i, chunk in enumerate(out):
        chunk.ord = i
    return out


def _merge_small(sized: list[tuple[Chunk, int]], max_tokens: int) -> list[Chunk]:
    """Join a chunk much smaller than the limit with the next section's (same page), naming that section
    in the text: a one-line section alone is mostly its title and matches every query about it."""
    small = max_tokens // 3
    out: list[tuple[Chunk, int]] = []
    for chunk, n in sized:
        if out:
            prev, m = out[-1]
            fits = m + n + 8 <= max_tokens and prev.page == chunk.page
            if fits and m < small:
                new = [h for h in chunk.heading if h not in prev.heading]
                label = f"{new[-1]}\n" if new else ""
                out[-1] = (Chunk(f"{prev.text}\n\n{label}{chunk.text}", prev.heading, prev.page), m + n + 8)
                continue
        out.append((chunk, n))
    return [c for c, _ in out]


def _pack(units: list[tuple[str, int]], max_tokens: int, overlap: int) -> list[tuple[str, int]]:
    chunks: list[tuple[str, int]] = []
    current: list[tuple[str, int]] = []
    size = 0
    for text, n in units:
        if current and size + n > max_tokens:
            chunks.append(("\n\n".join(t for t, _ in current), size))
            # Carry the tail of the previous chunk (whole units, up to `overlap` tokens) as context.
            carried: list[tuple[str, int]] = []
            kept = 0
            for unit in reversed(current):
                if kept + unit[1] > overlap or kept + unit[1] + n > max_tokens:
                    break
                carried.insert(0, unit)
                kept += unit[1]
            current, size = carried, kept
        current.append((text, n))
        size += n
    if current:
        chunks.append(("\n\n".join(t for t, _ in current), size))
    return chunks
