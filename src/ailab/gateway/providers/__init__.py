"""Provider adapters (plugins) behind one small interface; see base.Provider."""

from ailab.gateway.providers.base import Provider
from ailab.gateway.providers.registry import Alias, ProviderRegistry, default_registry

__all__ = ["Alias", "Provider", "ProviderRegistry", "default_registry"]
