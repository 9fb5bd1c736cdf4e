"""Archive members that carry credentials are sealed with the lab's secret key, as the secret store is.

The config file (inline provider keys, maybe the master key), the master key file and the stack's state and
rendered projects (generated passwords) go into a backup as AES-256-GCM ciphertext under a key derived from
the lab's secret key (AILAB_SECRET_KEY or secrets.key_file), the member's path as associated data. An archive
copied off the machine therefore leaks no credential without that key; `ailab restore` decrypts with the
archive's own key member (`--include-key`) or the target's key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"AILAB-SEALED-1\n"
NONCE_BYTES = 12
_CONTEXT = b"ailab backup members v1"


class SealError(ValueError):
    """The member cannot be opened (wrong key, damaged, or not sealed)."""


def member_key(secret_key: bytes) -> bytes:
    """A key for archive members only (derived: the secret store's key is never used twice)."""
    return hmac.new(secret_key, _CONTEXT, hashlib.sha256).digest()


def seal(key: bytes, arc: str, data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, arc.encode())


def unseal(key: bytes, arc: str, blob: bytes) -> bytes:
    if not blob.startswith(MAGIC):
        raise SealError(f"member {arc} is not sealed")
    body = blob[len(MAGIC) :]
    try:
        return AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], arc.encode())
    except (InvalidTag, ValueError):
        raise SealError(
            f"member {arc} does not decrypt with this secret key: it was sealed with the source lab's key "
            "(set AILAB_SECRET_KEY or secrets.key_file to it)"
        ) from None
