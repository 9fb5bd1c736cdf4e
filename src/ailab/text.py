"""Quoting what a user sent in a message: cut, so a 100k-character field is never echoed whole.

A leaf (imports no pillar): the gateway's error messages and the knowledge pillar's share it.
"""

from __future__ import annotations

QUOTE_LIMIT = 64


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text`, cut to `limit` characters (the last one an ellipsis)."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """User input as it may appear in an error message: repr'd and cut."""
    return clip(repr(value), limit)


def quote_sized(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` cut after `limit` characters, saying how long the whole was."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} characters)"
