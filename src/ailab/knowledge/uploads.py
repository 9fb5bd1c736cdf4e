"""Originals of uploaded documents, kept so a backup holds what users sent, not only what was parsed.

An upload is first spooled to `<data>/knowledge/incoming/<random>/` in chunks (never held whole in memory),
parsed from there, and then moved to `<data>/knowledge/uploads/<collection>/<sha256>/<name>` where `<name>`
is the upload's name, percent-encoded to one safe path component. A new version of the same name replaces
the old one, and deleting the document (or the collection) deletes its original.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

CHUNK = 1024 * 1024


@dataclass
class Incoming:
    """One uploaded document, spooled to disk."""

    name: str
    path: Path
    sha256: str
    size: int


def upload_dir(root: Path, collection: str) -> Path:
    return root / "uploads" / collection


def stored_name(name: str) -> str:
    encoded = quote(name, safe="")[:200]
    return "upload" if encoded in ("", ".", "..") else encoded


@contextmanager
def incoming_dir(root: Path) -> Iterator[Path]:
    """A private folder for one request's uploads, removed with what is left in it."""
    folder = root / "incoming" / secrets.token_hex(8)
    folder.mkdir(parents=True, mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def spool(folder: Path, index: int, name: str, source: BinaryIO | bytes) -> Incoming:
    """Copy `source` (a file object, read in chunks, or bytes) to `folder`, hashing it on the way."""
    path = folder / f"{index:05d}"
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        if isinstance(source, bytes):
            out.write(source)
            digest.update(source)
            size = len(source)
        else:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    return Incoming(name, path, digest.hexdigest(), size)


def keep_uploads(root: Path, collection: str, items: Iterable[Incoming], skip: set[str]) -> None:
    """Move each spooled upload whose name is not in `skip` (the ones that failed) to the kept originals."""
    base = upload_dir(root, collection)
    for item in items:
        if item.name in skip or not item.path.exists():
            continue
        fname = stored_name(item.name)
        target = base / item.sha256 / fname
        if target.is_file():
            continue
        remove_upload(root, collection, item.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{fname}.{os.getpid()}.tmp")
        shutil.move(item.path, tmp)
        tmp.replace(target)


def remove_upload(root: Path, collection: str, name: str) -> None:
    for path in upload_dir(root, collection).glob(f"*/{stored_name(name)}"):
        path.unlink(missing_ok=True)
        if not any(path.parent.iterdir()):  # another name with the same content may still live there
            path.parent.rmdir()


def remove_collection_uploads(root: Path, collection: str) -> None:
    shutil.rmtree(upload_dir(root, collection), ignore_errors=True)
