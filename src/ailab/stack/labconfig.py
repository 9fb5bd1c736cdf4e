"""The user's ailab.yaml, made portable for a container: the same lab, no credential in the file.

Every credential becomes an `os.environ/NAME` reference whose value travels next to the rendered project
(compose `.env`, the Kubernetes Secret), both mode 0600 and outside the config. `secret/NAME` references
stay as they are only when the secret store is Vault (the cluster reads the same Vault); the local store
lives in this host's database, so its values are carried the same way as environment references.
Stores are then pointed at the stack's own services (Postgres, Redis, Qdrant) when they are rendered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_REF = "os.environ/"
SECRET_REF = "secret/"

# Keys whose plaintext values are credentials wherever they appear in the config.
_CREDENTIAL_KEYS = {
    "api_key",
    "master_key",
    "database_url",
    "redis_url",
    "password",
    "token",
    "secret",
    "vault_token",
    "vault_role_id",
    "vault_secret_id",
    "client_secret",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
}
_CREDENTIAL_SUFFIXES = ("_key", "_token", "_secret", "_password")
# Every value below these keys is a credential (headers carry tokens; LiteLLM's env vars carry API keys).
_CREDENTIAL_PARENTS = {"extra_headers", "headers", "environment_variables"}
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)
# Set by the stack itself (see catalog/ailab.py); a user reference to them keeps the stack's value.
STACK_VARS = {"AILAB_MASTER_KEY", "AILAB_SECRET_KEY", "AILAB_DATABASE_URL", "AILAB_REDIS_URL"}
# Settings the stack provides itself: the host's values are dropped, never carried into the deployment.
STACK_PATHS = {
    ("general_settings", "master_key"),
    ("general_settings", "database_url"),
    ("limits", "redis_url"),
    ("secrets", "key_file"),
}


@dataclass
class Portable:
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)  # NAME -> value for the env file / Secret
    missing: dict[str, str] = field(default_factory=dict)  # NAME -> where the config refers to it


def env_name(path: tuple[str | int, ...]) -> str:
    """`model_list[0].litellm_params.api_key` -> `AILAB_CFG_MODEL_LIST_0_LITELLM_PARAMS_API_KEY`."""
    text = "_".join(str(p) for p in path)
    return "AILAB_CFG_" + re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _is_credential(path: tuple[str | int, ...], value: str) -> bool:
    keys = [p for p in path if isinstance(p, str)]
    last = keys[-1].lower() if keys else ""
    if last in _CREDENTIAL_KEYS or last.endswith(_CREDENTIAL_SUFFIXES):
        return True
    if any(k.lower() in _CREDENTIAL_PARENTS for k in keys[:-1]):
        return True
    return bool(_URL_WITH_PASSWORD.match(value))


class _Walker:
    def __init__(
        self,
        environ: Mapping[str, str],
        lookup: Callable[[str], str | None],
        keep_secret_refs: bool,
    ) -> None:
        self.environ = environ
        self.lookup = lookup  # secret store: NAME -> value
        self.keep_secret_refs = keep_secret_refs
        self.out = Portable({})

    def walk(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {
                k: self.walk(v, (*path, str(k)))
                for k, v in value.items()
                if (*path, str(k)) not in STACK_PATHS
            }
        if isinstance(value, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return self._leaf(value, path)
        return value

    def _leaf(self, value: str, path: tuple[str | int, ...]) -> str:
        if value.startswith(ENV_REF):
            name = value[len(ENV_REF) :]
            if name not in STACK_VARS:
                found = self.environ.get(name) or self.lookup(f"stack.{name}")
                self._carry(name, found, path)
            return value
        if value.startswith(SECRET_REF):
            if self.keep_secret_refs:
                return value
            name = re.sub(r"[^A-Za-z0-9_]+", "_", value[len(SECRET_REF) :])
            self._carry(name, self.lookup(value[len(SECRET_REF) :]), path)
            return ENV_REF + name
        if value and _is_credential(path, value):
            name = env_name(path)
            self.out.env[name] = value
            return ENV_REF + name
        return value

    def _carry(self, name: str, found: str | None, path: tuple[str | int, ...]) -> None:
        if found is None:
            self.out.missing.setdefault(name, _dotted(path))
        else:
            self.out.env[name] = found


def portable(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    lookup: Callable[[str], str | None],
    keep_secret_refs: bool = False,
) -> Portable:
    """`raw` (the file as written, references unresolved) with credentials moved out; see the module doc."""
    walker = _Walker(environ, lookup, keep_secret_refs)
    walker.out.config = walker.walk(copy.deepcopy(raw), ())
    return walker.out
