"""Which files `ailab ingest` reads from the paths it is given, and which it skips and why.

Safe by default: a symbolic link that leads out of the paths given is not followed (`follow_links`),
hidden files and folders are skipped (`include_hidden`), credential files are never read, and a file
without an extension is read only when it has a well-known name (README, LICENSE, Makefile …) or
`extensionless` is set, and then only if it sniffs as text. A path named explicitly is taken as given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ailab.knowledge.parsers import kind_of

# Read without asking: extensionless names that are documentation, not data.
KNOWN_TEXT = frozenset(
    {"readme", "license", "licence", "copying", "notice", "authors", "contributors", "contributing"}
    | {"changelog", "changes", "history", "news", "todo", "install", "makefile", "dockerfile", "procfile"}
)
# Never read: keys and credential stores, whatever the folder.
SECRET_NAMES = frozenset(
    {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", "authorized_keys"}
    | {"known_hosts", "credentials", "netrc", "_netrc", "pgpass", "htpasswd", "shadow", "master_key"}
)
SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".gpg", ".asc")
SNIFF = 8192


@dataclass
class Found:
    files: list[Path] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {source, reason}
    missing: list[dict[str, str]] = field(default_factory=list)

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append({"source": str(path), "reason": reason})


@dataclass(frozen=True)
class FindOptions:
    follow_links: bool = False
    include_hidden: bool = False
    extensionless: bool = False


def find_files(paths: list[Path], opts: FindOptions | None = None) -> Found:
    opts = opts or FindOptions()
    out = Found()
    roots = [p.resolve() for p in paths if p.is_dir()]
    seen: set[Path] = set()
    for p in paths:
        if p.is_file():  # named explicitly: taken as given, but a credential file is never read
            _take(p.resolve(), p, out, seen, opts, explicit=True)
        elif p.is_dir():
            _walk(p, roots, out, seen, opts)
        else:
            out.missing.append({"source": str(p), "reason": "no such file or folder"})
    return out


def _walk(top: Path, roots: list[Path], out: Found, seen: set[Path], opts: FindOptions) -> None:
    visited: set[Path] = set()
    for root, dirs, files in os.walk(top, followlinks=opts.follow_links):
        here = Path(root)
        real = here.resolve()
        if real in visited:  # a link loop, or a folder reached twice through links
            dirs[:] = []
            continue
        visited.add(real)
        keep = []
        for d in sorted(dirs):
            full = here / d
            if d.startswith(".") and not opts.include_hidden:
                out.skip(full, "hidden folder (use --include-hidden)")
            elif full.is_symlink() and not opts.follow_links and not _inside(full.resolve(), roots):
                out.skip(full, "link to a folder outside the paths given (use --follow-links)")
            else:
                keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            full = here / f
            if f.startswith(".") and not opts.include_hidden:
                out.skip(full, "hidden file (use --include-hidden)")
                continue
            target = full.resolve()
            if full.is_symlink() and not opts.follow_links and not _inside(target, roots):
                out.skip(full, "link to a file outside the paths given (use --follow-links)")
                continue
            _take(target, full, out, seen, opts, explicit=False)


def _take(target: Path, shown: Path, out: Found, seen: set[Path], opts: FindOptions, explicit: bool) -> None:
    if target in seen:
        return
    seen.add(target)
    reason = _refusal(target, shown, opts, explicit)
    if reason is None:
        out.files.append(target)
    else:
        out.skip(shown, reason)


def _refusal(target: Path, shown: Path, opts: FindOptions, explicit: bool) -> str | None:
    """Why a file is not read, or None to read it."""
    for name in {shown.name.lower(), target.name.lower()}:
        if name.lstrip(".") in SECRET_NAMES or name.endswith(SECRET_SUFFIXES):
            return "a key or credentials file: never ingested"
    if not target.is_file():
        return "not a regular file"
    if target.suffix:
        return None if kind_of(target.name) is not None else f"unsupported file type {target.suffix}"
    if not (explicit or opts.extensionless or target.name.lower() in KNOWN_TEXT):
        return "no extension (use --extensionless to read such files as text)"
    return None if _sniffs_as_text(target) else "no extension and not text"


def _sniffs_as_text(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF)
    except OSError:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the sniff's end
    return True


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)
