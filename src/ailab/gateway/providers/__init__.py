"""Provider adapters (plugins) behind one small interface; see base.Provider."""

from ailab.gateway.providers.base import Provider
from ailab.gateway.providers.registry import ProviderRegistry, default_registry

__all__ = ["Provider", "ProviderRegistry", "default_registry"]
