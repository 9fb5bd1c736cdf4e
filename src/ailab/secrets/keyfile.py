"""The local backend's 256-bit key: from AILAB_SECRET_KEY, else a key file kept apart from the data dir.

The file holds the key as urlsafe base64 (the same text AILAB_SECRET_KEY takes), is created on first use
with mode 0600 in a 0700 directory, and is published atomically (link from a temp file) so two processes
starting together agree on one key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from pathlib import Path

from ailab.secrets.base import SecretError

ENV_KEY = "AILAB_SECRET_KEY"
KEY_BYTES = 32

log = logging.getLogger("ailab.secrets")


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "ailab" / "secret.key"


def key_path(key_file: str | None) -> Path:
    return Path(key_file).expanduser() if key_file else default_key_path()


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str, source: str) -> bytes:
    """Urlsafe base64 of 32 bytes (padding optional); the message never repeats the text."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise SecretError(
            f"{source} is not urlsafe base64; expected the encoding of {KEY_BYTES} random bytes "
            '(generate one: python -c "import secrets,base64;'
            'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())")'
        ) from None
    if len(key) != KEY_BYTES:
        raise SecretError(f"{source} decodes to {len(key)} bytes; a {KEY_BYTES}-byte (256-bit) key is needed")
    return key


def load_key(key_file: str | None, data_dir: Path | None, *, create: bool) -> bytes | None:
    """The key, or None when there is none yet and `create` is false (nothing was ever encrypted)."""
    env = os.environ.get(ENV_KEY)
    if env:
        return decode_key(env, ENV_KEY)
    path = key_path(key_file)
    _warn_if_inside(path, data_dir)
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        if not create:
            return None
    return _create_key_file(path)


def _read_key_file(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; chmod 600 it", path)
    if len(raw) == KEY_BYTES:
        return raw  # a raw binary key, e.g. from `head -c 32 /dev/urandom`
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SecretError(f"key file {path} holds neither 32 raw bytes nor urlsafe base64") from None
    return decode_key(text, f"key file {path}")


def _create_key_file(path: Path) -> bytes:
    _make_private_dir(path.parent)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(encode_key(key) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent: never overwrites another process's key
        except FileExistsError:
            return _read_key_file(path)
    except OSError as exc:
        raise SecretError(f"cannot create key file {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("created a new secret key at %s (mode 0600): back it up apart from the lab's data", path)
    return key


def _make_private_dir(directory: Path) -> None:
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SecretError(f"cannot create key directory {directory}: {exc.strerror}") from None
    for created in missing:
        # mkdir's mode is filtered by the umask; the directories we made are set to 0700 explicitly.
        created.chmod(0o700)


def _warn_if_inside(path: Path, data_dir: Path | None) -> None:
    if data_dir is None:
        return
    try:
        inside = path.resolve().is_relative_to(data_dir.resolve())
    except OSError:
        return
    if inside:
        log.warning(
            "secret key file %s is inside the data dir %s: a copy or backup of the data carries the key "
            "that decrypts it; keep it elsewhere (secrets.key_file or AILAB_SECRET_KEY)",
            path,
            data_dir,
        )
