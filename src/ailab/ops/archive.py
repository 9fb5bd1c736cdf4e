"""The backup archive: a gzip'd tar whose first member is `manifest.json`, plus an integrity trailer.

The trailer is a second, stored (uncompressed) gzip member holding the sha256 of every byte before it, so a
flipped bit anywhere is caught, even one the inflater would never notice (deflate ignores some bits, and
the gzip header's fields are not covered by its CRC). Concatenated gzip members are standard gzip: `tar xzf`
and `gzip -d` read the archive as usual (the trailer's bytes land after the tar end-of-archive marker).

The manifest names every other member with its sha256 and size, the lab version and the database schema
(the names of the applied migrations) it was taken from. `verify_archive` reads the whole archive once
and refuses, with a message naming the member and the reason, anything damaged, truncated, incomplete,
padded with unlisted members, or written by a newer ailab whose schema this one does not know.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ailab import __version__

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive cannot be used: the message names the member (or the archive) and why."""


@dataclass(frozen=True)
class Member:
    path: str
    sha256: str
    size: int
    kind: str


@dataclass
class Manifest:
    lab_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    migrations: list[str] = field(default_factory=list)
    database: str = "sqlite"
    members: list[Member] = field(default_factory=list)
    key_included: bool = False
    notes: list[str] = field(default_factory=list)
    format: int = FORMAT
    sealed: list[str] = field(default_factory=list)  # members encrypted with the lab's key (ops.sealing)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "lab_version": self.lab_version,
            "created": self.created,
            "schema": {"migrations": list(self.migrations)},
            "database": self.database,
            "members": [asdict(m) for m in self.members],
            "key_included": self.key_included,
            "notes": list(self.notes),
            "sealed": list(self.sealed),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Manifest:
        try:
            data = json.loads(raw)
            fmt = int(data["format"])
            if fmt > FORMAT:
                raise ArchiveError(
                    f"{where}: archive format {fmt} is newer than this ailab ({__version__}) reads "
                    f"(format {FORMAT}); upgrade ailab first"
                )
            members = [
                Member(str(m["path"]), str(m["sha256"]), int(m["size"]), str(m["kind"]))
                for m in data["members"]
            ]
            return cls(
                format=fmt,
                lab_version=str(data["lab_version"]),
                created=str(data["created"]),
                migrations=[str(n) for n in data["schema"]["migrations"]],
                database=str(data["database"]),
                members=members,
                key_included=bool(data.get("key_included", False)),
                notes=[str(n) for n in data.get("notes", [])],
                sealed=[str(n) for n in data.get("sealed", [])],
            )
        except ArchiveError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{where}: manifest.json is not a valid ailab manifest ({exc!r})") from None

    def member(self, path: str) -> Member | None:
        return next((m for m in self.members if m.path == path), None)

    def by_kind(self, *kinds: str) -> list[Member]:
        return [m for m in self.members if m.kind in kinds]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def safe_member_path(name: str) -> PurePosixPath:
    """A relative path with no `..`, so extraction can never leave its destination."""
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or any(part in ("..", ".", "") for part in p.parts):
        raise ArchiveError(f"member {name!r} has an unsafe path")
    return p


# -- writing --------------------------------------------------------------------------------------------


def write_archive(out: Path, staging: Path, manifest: Manifest, progress: Callable[[str], None]) -> None:
    """Write `manifest.json` then each staged member into `out` (a temp name, renamed when complete)."""
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=3, format=tarfile.PAX_FORMAT) as tar:
            raw = manifest.to_bytes()
            info = _info(MANIFEST, len(raw), 0o600)
            tar.addfile(info, _BytesReader(raw))
            for m in manifest.members:
                src = staging / m.path
                mode = (src.stat().st_mode & 0o700) | 0o600
                with open(src, "rb") as fh:
                    tar.addfile(_info(m.path, m.size, mode), fh)
        digest = file_sha256(tmp)
        with open(tmp, "ab") as fh:
            fh.write(_trailer(digest))
        tmp.chmod(0o600)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    progress(f"wrote {out} ({len(manifest.members)} members)")


TRAILER_PREFIX = b"ailab-archive-sha256:"


def _trailer(hexdigest: str) -> bytes:
    return gzip.compress(TRAILER_PREFIX + hexdigest.encode() + b"\n", compresslevel=0, mtime=0)


TRAILER_SIZE = len(_trailer("0" * 64))


def _trailer_digest(path: Path) -> str | None:
    """The sha256 the archive was written with, or None when its trailer is missing or unreadable."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - TRAILER_SIZE))
        tail = fh.read()
    try:
        text = gzip.decompress(tail) if len(tail) == TRAILER_SIZE else b""
    except (OSError, EOFError, zlib.error):
        return None
    if not text.startswith(TRAILER_PREFIX):
        return None
    digest = text[len(TRAILER_PREFIX) :].strip().decode(errors="replace")
    # Byte for byte as written: gzip's header fields (flags, OS) are not covered by its CRC.
    return digest if tail == _trailer(digest) else None


def check_trailer(path: Path) -> bool:
    """The archive's bytes (before the trailer) hash to the sha256 it was written with: True; no readable
    trailer: False (the caller decides when to say so); a different hash: ArchiveError."""
    expected = _trailer_digest(path)
    if expected is None:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = path.stat().st_size - TRAILER_SIZE
        while left > 0 and (chunk := fh.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != expected:
        raise ArchiveError(
            f"{path}: damaged archive: its sha256 ({h.hexdigest()[:16]}…) differs from the one it was "
            f"written with ({expected[:16]}…)"
        )
    return True


def _info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return out


# -- reading and verifying --------------------------------------------------------------------------------

Sink = Callable[[Member], IO[bytes] | None]


def read_archive(
    path: Path, sink: Sink | None = None, check: Callable[[Manifest], None] | None = None
) -> Manifest:
    """Stream the archive once: parse the manifest (then `check` it), hash every member against it.

    `sink(member)` may return a writable file that receives the member's bytes (extraction); the caller
    closes nothing: the file is closed here. Raises ArchiveError on any mismatch.
    """
    where = str(path)
    try:
        # First when it is there (a damaged manifest must not read as "from a newer schema"); its absence
        # is reported last, so that a truncated archive is reported as truncated.
        trailer_ok = check_trailer(path)
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            manifest = _first_manifest(tar, where)
            if check is not None:
                check(manifest)
            seen = _read_members(tar, manifest, where, sink)
            while gz.read(CHUNK):  # to the gzip trailer: its CRC and length catch the last bytes too
                pass
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{where}: no such file") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"{where}: {_why(exc)}") from None
    missing = [m.path for m in manifest.members if m.path not in seen]
    if missing:
        raise ArchiveError(
            f"{where}: member {missing[0]} is listed in the manifest but missing from the archive "
            f"({len(missing)} missing: truncated?)"
        )
    if not trailer_ok:
        raise ArchiveError(
            f"{where}: damaged or truncated archive: its integrity trailer is missing or damaged "
            "(was it written by `ailab backup`, and copied whole?)"
        )
    return manifest


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in text or "truncated" in text:
        return f"truncated archive: the file ends early ({text})"
    return f"damaged archive: corrupt data ({text})"


def _first_manifest(tar: tarfile.TarFile, where: str) -> Manifest:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        got = "an empty archive" if first is None else f"{first.name!r} first"
        raise ArchiveError(f"{where}: not an ailab backup: manifest.json is missing (found {got})")
    fh = tar.extractfile(first)
    assert fh is not None
    return Manifest.from_bytes(fh.read(), where)


def _read_members(tar: tarfile.TarFile, manifest: Manifest, where: str, sink: Sink | None) -> set[str]:
    expected = {m.path: m for m in manifest.members}
    seen: set[str] = set()
    while (info := tar.next()) is not None:
        if info.isdir():
            continue
        safe_member_path(info.name)
        m = expected.get(info.name)
        if m is None or not info.isfile():
            raise ArchiveError(f"{where}: member {info.name} is not listed in the manifest")
        if info.name in seen:
            raise ArchiveError(f"{where}: member {info.name} appears twice")
        seen.add(info.name)
        src = tar.extractfile(info)
        assert src is not None
        out = sink(m) if sink is not None else None
        try:
            digest, size = _copy_hashing(src, out)
        finally:
            if out is not None:
                out.close()
        if size != m.size:
            raise ArchiveError(f"{where}: member {m.path} has {size} bytes, the manifest says {m.size}")
        if digest != m.sha256:
            raise ArchiveError(f"{where}: member {m.path} is damaged (sha256 mismatch)")
    return seen


def _copy_hashing(src: IO[bytes], out: IO[bytes] | None) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return h.hexdigest(), size


def known_migrations() -> set[str]:
    from ailab.db import all_migrations

    return {m.name for m in all_migrations()}


def check_schema(manifest: Manifest, where: str, known: Iterable[str] | None = None) -> None:
    names = set(known_migrations() if known is None else known)
    unknown = [n for n in manifest.migrations if n not in names]
    if unknown:
        raise ArchiveError(
            f"{where}: from a newer schema: migrations {', '.join(unknown)} unknown to ailab {__version__} "
            f"(the archive was written by ailab {manifest.lab_version}); upgrade ailab first"
        )


def verify_archive(path: Path) -> Manifest:
    """Check the archive completely (readable, every checksum, format and schema) without extracting."""
    return read_archive(Path(path), check=lambda m: check_schema(m, str(path)))
