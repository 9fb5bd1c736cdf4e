"""Bearer-token authentication from memory (no database round trip per request).

Resolvers are tried in order; the master key is the break-glass credential. Virtual keys (a later pillar)
add a resolver backed by an in-memory cache of hashed keys.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from ailab.access.principal import MASTER, Principal

log = logging.getLogger(__name__)

Resolver = Callable[[str], Principal | None]
MASTER_KEY_FILE = "master_key"


class Authenticator:
    def __init__(self, master_key: str) -> None:
        self._master = master_key.encode()
        self.resolvers: list[Resolver] = [self._resolve_master]

    def _resolve_master(self, token: str) -> Principal | None:
        return MASTER if hmac.compare_digest(token.encode(), self._master) else None

    def authenticate(
        self, authorization: bytes | None, api_key_header: bytes | None = None
    ) -> Principal | None:
        token = _bearer(authorization) or (
            api_key_header.decode("latin-1").strip() if api_key_header else None
        )
        if not token:
            return None
        for resolve in self.resolvers:
            principal = resolve(token)
            if principal is not None:
                return principal
        return None


def _bearer(value: bytes | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def ensure_master_key(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The configured key, else the one kept in the data dir, else a new one (saved 0600).

    Returns (key, created): the caller prints a created key once.
    """
    from ailab.db import secure_data_dir

    if configured:
        return configured, False
    path = data_dir / MASTER_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    secure_data_dir(data_dir)  # 0700
    key = "sk-ailab-" + secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text(encoding="utf-8").strip(), False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key, True
