"""The `vault` backend: HashiCorp Vault or OpenBao, KV version 2, through hvac.

Each secret lives at `{mount}/data/{prefix}{name}` as `{"value": ...}`; KV v2 keeps the versions, so a
rotation is a new version and `version()` reads only metadata. Auth is a token (settings or $VAULT_TOKEN)
or AppRole, which logs in again before its token expires and once more when Vault answers 403.
Errors become SecretStoreUnavailable naming the URL and never the token or secret ID.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import hvac
import requests
from hvac import exceptions as hv

from ailab.config import SecretsSettings
from ailab.secrets.base import NAME_RE, Auditor, SecretError, SecretMeta, SecretStoreUnavailable, StoreBase

T = TypeVar("T")
TIMEOUT_S = 10
RENEW_MARGIN = 0.8  # log in again after 80% of the AppRole token's lease


def parse_vault_time(text: str | None) -> int:
    """RFC 3339 with nanoseconds ("2026-01-02T03:04:05.123456789Z") to epoch milliseconds; 0 if absent."""
    if not text:
        return 0
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        return 0
    base = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    millis = int((m[2] or "0")[:3].ljust(3, "0"))
    return int(base.astimezone(UTC).timestamp()) * 1000 + millis


def _current_version(meta: dict[str, Any]) -> int | None:
    """The live version from KV v2 metadata; None when it was soft-deleted or destroyed."""
    current = int(meta.get("current_version") or 0)
    info = (meta.get("versions") or {}).get(str(current)) or {}
    if current == 0 or info.get("deletion_time") or info.get("destroyed"):
        return None
    return current


class VaultStore(StoreBase):
    backend = "vault"

    def __init__(
        self, settings: SecretsSettings, audit: Auditor | None = None, actor: str = "system"
    ) -> None:
        super().__init__(audit, actor)
        url = settings.vault_url or os.environ.get("VAULT_ADDR")
        if not url:
            raise SecretError("secrets.backend is vault but neither secrets.vault_url nor VAULT_ADDR is set")
        self.url = url.rstrip("/")
        self.mount = settings.vault_mount.strip("/")
        prefix = settings.vault_prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""  # always a folder, so list() can enumerate it
        self.auth = settings.vault_auth
        self._role_id = settings.vault_role_id
        self._secret_id = settings.vault_secret_id
        token = settings.vault_token or os.environ.get("VAULT_TOKEN")
        self._check_credentials(token)
        # token passed explicitly (even None) so hvac never falls back to ~/.vault-token behind our back
        self.client = hvac.Client(
            url=self.url, token=token, namespace=settings.vault_namespace, timeout=TIMEOUT_S
        )
        self._token = token
        self._expires = math.inf if self.auth == "token" else 0.0
        self._login_lock = threading.Lock()

    def _check_credentials(self, token: str | None) -> None:
        if self.auth == "token" and not token:
            raise SecretError(
                "secrets.vault_auth is token but neither secrets.vault_token nor VAULT_TOKEN is set"
            )
        if self.auth == "approle" and not (self._role_id and self._secret_id):
            raise SecretError("secrets.vault_auth is approle: set secrets.vault_role_id and vault_secret_id")

    # -- transport ------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for credential in (self._token, self._secret_id, self.client.token):
            if credential:
                text = text.replace(credential, "***")
        return text

    def _login(self) -> None:
        with self._login_lock:
            if time.monotonic() < self._expires:
                return
            try:
                resp = self.client.auth.approle.login(
                    role_id=self._role_id, secret_id=self._secret_id, use_token=True
                )
            except hv.InvalidPath:
                raise SecretStoreUnavailable(
                    f"vault at {self.url}: AppRole auth is not enabled (auth/approle)"
                ) from None
            except hv.VaultError as exc:
                raise SecretStoreUnavailable(
                    f"vault at {self.url}: AppRole login failed ({self._reason(exc)})"
                ) from None
            lease = float(resp["auth"].get("lease_duration") or 0)
            self._expires = time.monotonic() + lease * RENEW_MARGIN if lease > 0 else math.inf

    def _call(self, op: Callable[[], T]) -> T:
        """Run one hvac operation, mapping failures; InvalidPath passes through for callers to read."""
        for attempt in (1, 2):
            try:
                if self.auth == "approle":
                    self._login()
                return op()
            except hv.InvalidPath:
                raise
            except (hv.Forbidden, hv.Unauthorized) as exc:
                if self.auth == "approle" and attempt == 1:
                    self._expires = 0.0  # the token may have expired or been revoked: log in again
                    continue
                raise SecretStoreUnavailable(
                    f"vault at {self.url} refused access ({self._reason(exc)}): check the {self.auth} "
                    f"credentials and that the policy allows {self.mount}/data/{self.prefix}*"
                ) from None
            except hv.VaultError as exc:
                raise SecretStoreUnavailable(
                    f"vault at {self.url} failed: {type(exc).__name__} ({self._reason(exc)})"
                ) from None
            except requests.RequestException as exc:
                raise SecretStoreUnavailable(
                    f"vault at {self.url} is unreachable ({type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")

    def _reason(self, exc: hv.VaultError) -> str:
        errors = getattr(exc, "errors", None)
        text = "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else "no detail"
        return self._scrub(text)

    def _kv(self) -> Any:
        return self.client.secrets.kv.v2

    def _metadata(self, name: str) -> dict[str, Any] | None:
        try:
            resp = self._call(
                lambda: self._kv().read_secret_metadata(path=self.prefix + name, mount_point=self.mount)
            )
        except hv.InvalidPath:
            return None
        return dict(resp["data"])

    # -- primitives -----------------------------------------------------------------------------------

    def _read(self, name: str) -> tuple[str, int] | None:
        try:
            resp = self._call(
                lambda: self._kv().read_secret_version(
                    path=self.prefix + name, mount_point=self.mount, raise_on_deleted_version=True
                )
            )
        except hv.InvalidPath:
            return None
        data = resp["data"]
        value = (data.get("data") or {}).get("value")
        if not isinstance(value, str):
            raise SecretError(
                f"vault secret {self.mount}/{self.prefix}{name} has no string field 'value' "
                "(ailab stores each secret as {'value': ...})"
            )
        return value, int(data["metadata"]["version"])

    def _write(self, name: str, value: str) -> int:
        resp = self._call(
            lambda: self._kv().create_or_update_secret(
                path=self.prefix + name, secret={"value": value}, mount_point=self.mount
            )
        )
        return int(resp["data"]["version"])

    def _remove(self, name: str) -> int | None:
        meta = self._metadata(name)
        if meta is None:
            return None
        try:
            self._call(
                lambda: self._kv().delete_metadata_and_all_versions(
                    path=self.prefix + name, mount_point=self.mount
                )
            )
        except hv.InvalidPath:
            return None
        return _current_version(meta) or int(meta.get("current_version") or 0)

    def _version(self, name: str) -> int | None:
        meta = self._metadata(name)
        return None if meta is None else _current_version(meta)

    def _list(self) -> list[SecretMeta]:
        try:
            resp = self._call(lambda: self._kv().list_secrets(path=self.prefix, mount_point=self.mount))
        except hv.InvalidPath:
            return []  # nothing stored under the prefix yet
        out: list[SecretMeta] = []
        for key in resp["data"].get("keys") or []:
            if key.endswith("/") or not NAME_RE.fullmatch(key):
                continue  # sub-folders and foreign entries are not ailab secrets
            meta = self._metadata(key)
            version = _current_version(meta) if meta else None
            if meta is not None and version is not None:
                out.append(SecretMeta(key, version, parse_vault_time(meta.get("updated_time")), self.backend))
        return out
