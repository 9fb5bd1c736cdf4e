"""Secrets: upstream API keys and other credentials, kept encrypted (`local`) or in Vault / OpenBao.

Config files refer to them as `secret/NAME`; the refresher fills deployments' keys and follows rotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ailab.secrets.base import (
    Auditor,
    SecretError,
    SecretMeta,
    SecretNotFound,
    SecretStore,
    SecretStoreUnavailable,
    validate_name,
)
from ailab.secrets.envimport import EnvRef, find_env_refs, rewrite
from ailab.secrets.keyfile import ENV_KEY, decode_key, encode_key, key_path, load_key
from ailab.secrets.local import MIGRATIONS, LocalStore
from ailab.secrets.refresher import SecretRefresher

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ailab.config import SecretsSettings

__all__ = [
    "ENV_KEY",
    "MIGRATIONS",
    "Auditor",
    "EnvRef",
    "LocalStore",
    "SecretError",
    "SecretMeta",
    "SecretNotFound",
    "SecretRefresher",
    "SecretStore",
    "SecretStoreUnavailable",
    "decode_key",
    "encode_key",
    "find_env_refs",
    "key_path",
    "load_key",
    "open_secret_store",
    "rewrite",
    "validate_name",
]


def open_secret_store(
    settings: SecretsSettings,
    engine: Engine,
    data_dir: Path,
    audit: Auditor | None = None,
    actor: str = "system",
) -> SecretStore:
    """The configured backend. `local` needs `engine` migrated with MIGRATIONS; nothing touches the
    network or creates a key file until a secret is first read or written."""
    if settings.backend == "vault":
        from ailab.secrets.vault import VaultStore  # hvac and requests only when Vault is used

        return VaultStore(settings, audit=audit, actor=actor)
    return LocalStore(engine, settings.key_file, data_dir, audit=audit, actor=actor)
