"""Configuration: ailab.yaml models and loading (file → env → defaults, flags on top).

The config pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.config.loader import SECRET_REF, ConfigError, LoadedConfig, load_config, resolve_config_path
    from ailab.config.models import (
        AccessSettings,
        KnowledgeSettings,
        LabConfig,
        LimitsSettings,
        LiteLLMParams,
        ModelEntry,
        ModelInfo,
        RouterSettings,
        SecretsSettings,
        ServerSettings,
    )
    from ailab.config.sso import ALLOWED_ALGS, OidcSettings, SsoSettings

_WHERE = {
    "ALLOWED_ALGS": "ailab.config.sso",
    "AccessSettings": "ailab.config.models",
    "ConfigError": "ailab.config.loader",
    "KnowledgeSettings": "ailab.config.models",
    "LabConfig": "ailab.config.models",
    "LimitsSettings": "ailab.config.models",
    "LiteLLMParams": "ailab.config.models",
    "LoadedConfig": "ailab.config.loader",
    "ModelEntry": "ailab.config.models",
    "ModelInfo": "ailab.config.models",
    "OidcSettings": "ailab.config.sso",
    "RouterSettings": "ailab.config.models",
    "SECRET_REF": "ailab.config.loader",
    "SecretsSettings": "ailab.config.models",
    "ServerSettings": "ailab.config.models",
    "SsoSettings": "ailab.config.sso",
    "load_config": "ailab.config.loader",
    "resolve_config_path": "ailab.config.loader",
}

__all__ = [
    "ALLOWED_ALGS",
    "SECRET_REF",
    "AccessSettings",
    "ConfigError",
    "KnowledgeSettings",
    "LabConfig",
    "LimitsSettings",
    "LiteLLMParams",
    "LoadedConfig",
    "ModelEntry",
    "ModelInfo",
    "OidcSettings",
    "RouterSettings",
    "SecretsSettings",
    "ServerSettings",
    "SsoSettings",
    "load_config",
    "resolve_config_path",
]


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
