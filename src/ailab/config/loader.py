"""Load ailab.yaml.

Precedence, highest first: command-line flag → environment (AILAB_*) → config file → defaults.
`os.environ/NAME` values are read from the environment at load time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ailab.config.models import LabConfig

ENV_REF = "os.environ/"
SECRET_REF = "secret/"
DEFAULT_CONFIG_NAME = "ailab.yaml"
DEFAULT_DATA_DIR = ".ailab"


class ConfigError(Exception):
    """Invalid configuration: the message names the file, the key path and why."""


@dataclass
class LoadedConfig:
    config: LabConfig
    path: Path | None
    data_dir: Path
    warnings: list[str] = field(default_factory=list)


def resolve_config_path(flag: str | Path | None) -> Path | None:
    if flag:
        return Path(flag)
    env = os.environ.get("AILAB_CONFIG")
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def resolve_data_dir(flag: str | Path | None) -> Path:
    return Path(flag or os.environ.get("AILAB_DATA_DIR") or DEFAULT_DATA_DIR)


def load_config(
    config: str | Path | None = None, data_dir: str | Path | None = None, keep_unset_refs: bool = False
) -> LoadedConfig:
    """`keep_unset_refs`: an `os.environ/NAME` whose variable is unset stays as written instead of failing;
    for commands that only read the lab's data (usage, models, collections) and never call a provider."""
    path = resolve_config_path(config)
    raw = _read_yaml(path) if path else {}
    where = str(path) if path else "<defaults>"
    raw = _resolve_env_refs(raw, where, (), keep_unset_refs)
    _lift_litellm_compat(raw)
    _apply_env_overrides(raw)
    try:
        cfg = LabConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(where, exc)) from None
    warnings = [f"{where}: {w}" for w in unknown_keys(cfg)]
    _check_groups(cfg, where)
    return LoadedConfig(config=cfg, path=path, data_dir=resolve_data_dir(data_dir), warnings=warnings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _resolve_env_refs(value: Any, where: str, path: tuple[str | int, ...], keep_unset: bool = False) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env_refs(v, where, (*path, k), keep_unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env_refs(v, where, (*path, i), keep_unset) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_REF):
        name = value[len(ENV_REF) :]
        if name not in os.environ and keep_unset:
            return value
        if name not in os.environ:
            raise ConfigError(f"{where}: {_dotted(path)}: environment variable {name} is not set")
        return os.environ[name]
    return value


# LiteLLM accepts these in litellm_settings (module level); they mean router settings here.
_LITELLM_ROUTER_KEYS = {"num_retries": "num_retries", "request_timeout": "timeout", "fallbacks": "fallbacks"}


def _lift_litellm_compat(raw: dict[str, Any]) -> None:
    """Accept LiteLLM's alternative spellings so its files run unchanged."""
    settings = raw.get("litellm_settings")
    if isinstance(settings, dict):
        router = raw.setdefault("router_settings", {}) or {}
        raw["router_settings"] = router
        for src, dst in _LITELLM_ROUTER_KEYS.items():
            if src in settings:
                value = settings.pop(src)
                router.setdefault(dst, value)
    for entry in raw.get("model_list") or []:
        # LiteLLM also allows rpm/tpm next to litellm_params.
        if isinstance(entry, dict) and isinstance(entry.get("litellm_params"), dict):
            for key in ("rpm", "tpm"):
                if key in entry:
                    entry["litellm_params"].setdefault(key, entry.pop(key))


def _apply_env_overrides(raw: dict[str, Any]) -> None:
    general = raw.setdefault("general_settings", {}) or {}
    raw["general_settings"] = general
    if os.environ.get("AILAB_MASTER_KEY"):
        general["master_key"] = os.environ["AILAB_MASTER_KEY"]
    if os.environ.get("AILAB_DATABASE_URL"):
        general["database_url"] = os.environ["AILAB_DATABASE_URL"]
    _apply_store_overrides(raw, general)
    server = raw.setdefault("ailab", {}) or {}
    raw["ailab"] = server
    for key in ("host", "port", "workers"):
        env = os.environ.get(f"AILAB_{key.upper()}")
        if env:
            server[key] = env
    if os.environ.get("AILAB_LIMITS_REDIS_URL"):  # also how `ailab up --workers N` shares its embedded Redis
        limits = raw.setdefault("limits", {}) or {}
        raw["limits"] = limits
        limits.update(backend="redis", redis_url=os.environ["AILAB_LIMITS_REDIS_URL"])


def _apply_store_overrides(raw: dict[str, Any], general: dict[str, Any]) -> None:
    """Container deployments choose the shared stores by environment (docs/deploy.md):
    AILAB_LEDGER=sqlite|postgres, AILAB_LIMITS_BACKEND=memory|redis, AILAB_REDIS_URL."""
    ledger = os.environ.get("AILAB_LEDGER")
    if ledger == "sqlite":
        general.pop("database_url", None)  # the data dir's SQLite file
    elif ledger == "postgres" and not general.get("database_url"):
        raise ConfigError("AILAB_LEDGER=postgres: set AILAB_DATABASE_URL (postgresql+psycopg://…)")
    elif ledger not in (None, "", "sqlite", "postgres"):
        raise ConfigError(f"AILAB_LEDGER={ledger!r}: choose sqlite or postgres")
    current = raw.get("limits")
    limits: dict[str, Any] = current if isinstance(current, dict) else {}
    if os.environ.get("AILAB_LIMITS_BACKEND"):
        limits["backend"] = os.environ["AILAB_LIMITS_BACKEND"]
    if os.environ.get("AILAB_REDIS_URL"):
        limits["redis_url"] = os.environ["AILAB_REDIS_URL"]
    if limits:
        raw["limits"] = limits


def unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Every key pydantic kept as 'extra', by dotted path, so nothing vanishes silently."""
    found = [f"{prefix}{k}: unknown key, ignored" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        found.extend(_unknown_in(getattr(model, name), f"{prefix}{name}"))
    if isinstance(model, LabConfig):
        found.extend(f"litellm_settings.{k}: not supported by ailab, ignored" for k in model.litellm_settings)
    return found


def _unknown_in(value: Any, path: str) -> list[str]:
    if isinstance(value, BaseModel):
        return unknown_keys(value, f"{path}.")
    if isinstance(value, list):
        out: list[str] = []
        for i, item in enumerate(value):
            out.extend(_unknown_in(item, f"{path}[{i}]"))
        return out
    return []


def _check_groups(cfg: LabConfig, where: str) -> None:
    names = {m.model_name for m in cfg.model_list} | set(cfg.router_settings.model_group_alias)
    for i, rule in enumerate(cfg.router_settings.fallbacks):
        for src, targets in rule.items():
            for t in [src, *targets]:
                if t not in names:
                    raise ConfigError(
                        f"{where}: router_settings.fallbacks[{i}]: model group {t!r} is not in model_list"
                    )


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def _format_validation(where: str, exc: ValidationError) -> str:
    lines = [f"{where}: invalid configuration"]
    for err in exc.errors():
        loc = _dotted(tuple(err["loc"]))
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)
