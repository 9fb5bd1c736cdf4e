"""anthropic adapter (placeholder until the adapter lands)."""

from __future__ import annotations

from ailab.gateway.providers.base import Provider


class AnthropicProvider(Provider):
    name = "anthropic"
