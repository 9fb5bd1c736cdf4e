"""Originals of uploaded documents, kept so a backup holds what users sent, not only what was parsed.

Layout: `<data>/knowledge/uploads/<collection>/<sha256>/<name>` where `<name>` is the upload's name,
percent-encoded to one safe path component. A new version of the same name replaces the old one, and
deleting the document (or the collection) deletes its original.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote


def upload_dir(root: Path, collection: str) -> Path:
    return root / "uploads" / collection


def stored_name(name: str) -> str:
    encoded = quote(name, safe="")[:200]
    return "upload" if encoded in ("", ".", "..") else encoded


def save_uploads(root: Path, collection: str, items: Iterable[tuple[str, bytes]], skip: set[str]) -> None:
    """Keep each uploaded (name, bytes) whose name is not in `skip` (the ones that failed to ingest)."""
    base = upload_dir(root, collection)
    for name, data in items:
        if name in skip:
            continue
        fname = stored_name(name)
        target = base / hashlib.sha256(data).hexdigest() / fname
        if target.is_file():
            continue
        remove_upload(root, collection, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{fname}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def remove_upload(root: Path, collection: str, name: str) -> None:
    for path in upload_dir(root, collection).glob(f"*/{stored_name(name)}"):
        path.unlink(missing_ok=True)
        if not any(path.parent.iterdir()):  # another name with the same content may still live there
            path.parent.rmdir()


def remove_collection_uploads(root: Path, collection: str) -> None:
    shutil.rmtree(upload_dir(root, collection), ignore_errors=True)
