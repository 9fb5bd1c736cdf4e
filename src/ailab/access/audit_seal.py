"""What makes the audit chain hard to rewrite: a MAC key kept outside the database, and a checkpoint file.

- Each row's hash is HMAC-SHA256 under a key derived from the lab's secret key (AILAB_SECRET_KEY or the key
  file, kept apart from the data dir), so whoever can write the database but lacks that key cannot recompute
  the chain after editing or deleting rows.
- The newest (row id, row count, hash) is also written, MAC'd, to a checkpoint file beside the database
  (`<data dir>/audit.checkpoint`): rows removed from the end, or the whole table reset, are then caught too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ailab.audit")

CHECKPOINT_FILE = "audit.checkpoint"
_CONTEXT = b"ailab audit chain v1"


def derive_mac_key(secret_key: bytes) -> bytes:
    """A key for the audit chain only (the secret store's own key is never used twice)."""
    return hmac.new(secret_key, _CONTEXT, hashlib.sha256).digest()


@dataclass(frozen=True)
class Checkpoint:
    row_id: int
    count: int
    hash: str


def _mac(key: bytes, cp: Checkpoint) -> str:
    return hmac.new(key, f"{cp.row_id}:{cp.count}:{cp.hash}".encode(), hashlib.sha256).hexdigest()


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def read(self, key: bytes) -> Checkpoint | None:
        """The checkpoint, None when there is none; ValueError when it was altered or is unreadable."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise ValueError(f"audit checkpoint {self.path} is unreadable") from None
        try:
            cp = Checkpoint(int(data["row_id"]), int(data["count"]), str(data["hash"]))
            mac = str(data["mac"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"audit checkpoint {self.path} is malformed") from None
        if not hmac.compare_digest(mac, _mac(key, cp)):
            raise ValueError(f"audit checkpoint {self.path} does not verify (it was altered)")
        return cp

    def advance(self, key: bytes, cp: Checkpoint) -> None:
        """Write `cp` unless the file already holds a later one (several processes append)."""
        try:
            current = self.read(key)
        except ValueError:
            current = None  # replaced below: verify() already reports the bad one
        if current is not None and current.count >= cp.count:
            return
        data = {"row_id": cp.row_id, "count": cp.count, "hash": cp.hash, "mac": _mac(key, cp)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(data) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not write the audit checkpoint %s: %s", self.path, exc.strerror)
