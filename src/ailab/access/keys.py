"""Virtual API keys: random, shown once, stored as sha256 (keys carry 256 bits of entropy, so a fast hash is
the right tool, as for GitHub or Stripe tokens); a short prefix is kept for listings."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-ailab-"
DISPLAY_CHARS = 14


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_CHARS] + "…"


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(6)}"
