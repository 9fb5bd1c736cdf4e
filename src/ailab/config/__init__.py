"""Configuration: ailab.yaml models and loading (file → env → defaults, flags on top)."""

from ailab.config.loader import ConfigError, LoadedConfig, load_config
from ailab.config.models import LabConfig, ModelEntry

__all__ = ["ConfigError", "LabConfig", "LoadedConfig", "ModelEntry", "load_config"]
