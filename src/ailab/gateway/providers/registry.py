"""Provider plugins: a registry the app factory builds; built-ins register the way third parties do.

Every provider (built-in or not) is an entry point of the `ailab.providers` group (see `ailab.plugins`): a
callable taking the registry, `def register(registry): registry.add(MyProvider, ("myvendor", Alias(…)))`.
Each adapter module declares the LiteLLM prefixes it serves next to the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ailab import plugins
from ailab.gateway.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Alias:
    """A LiteLLM provider prefix served by one of our adapters, with its default base URL."""

    adapter: str
    api_base: str | None = None
    price_id: str | None = None  # genai-prices provider id


# LiteLLM prefixes we recognise but do not serve: named in the warning rather than guessed at.
_KNOWN_LITELLM_PREFIXES = frozenset(
    {
        "bedrock",
        "vertex_ai",
        "vertex_ai_beta",
        "sagemaker",
        "cohere",
        "huggingface",
        "replicate",
        "watsonx",
        "databricks",
        "cloudflare",
        "ai21",
        "nlp_cloud",
        "aleph_alpha",
        "palm",
        "petals",
        "baseten",
        "predibase",
    }
)


class ProviderRegistry:
    def __init__(self) -> None:
        self.adapters: dict[str, type[Provider]] = {}
        self.aliases: dict[str, Alias] = {}
        # Model names LiteLLM accepts without a prefix, inferred by family: (name start, prefix).
        self.guesses: list[tuple[str, str]] = []

    def add(self, adapter: type[Provider], *aliases: tuple[str, Alias], guesses: Iterable[str] = ()) -> None:
        """Register an adapter, the prefixes it serves, and the unprefixed model-name starts it claims.

        A name or prefix already taken by another adapter is an error (nothing is registered then)."""
        own = (adapter.name, Alias(adapter.name, adapter.default_api_base))
        wanted = [own, *aliases] if adapter.name not in dict(aliases) else list(aliases)
        old = self.adapters.get(adapter.name)
        if old is not None and old is not adapter:
            raise ValueError(
                f"provider {adapter.name!r} is registered twice ({_qual(old)}, {_qual(adapter)})"
            )
        taken = [p for p, a in wanted if p in self.aliases and self.aliases[p] != a]
        if taken:
            raise ValueError(f"provider prefix {', '.join(map(repr, taken))} is already registered")
        self.adapters[adapter.name] = adapter
        self.aliases.update(wanted)
        self.guesses += [(start, adapter.name) for start in guesses]

    def split(self, model: str) -> tuple[str, str]:
        """`groq/llama3-8b` → ("groq", "llama3-8b"); unprefixed names are inferred like LiteLLM does."""
        prefix, sep, rest = model.partition("/")
        if sep and prefix in self.aliases:
            return prefix, rest
        if sep and prefix in _KNOWN_LITELLM_PREFIXES:
            raise KeyError(
                f"provider {prefix!r} is not supported yet (supported: {', '.join(sorted(self.aliases))})"
            )
        for start, provider in self.guesses:
            if model.startswith(start):
                return provider, model
        raise KeyError(
            f"cannot tell the provider of {model!r}: write it as '<provider>/<model>' with one of "
            + ", ".join(sorted(self.aliases))
        )

    def alias(self, prefix: str) -> Alias:
        return self.aliases[prefix]

    def adapter(self, name: str) -> type[Provider]:
        return self.adapters[name]


def _qual(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def default_registry(load_plugins: bool = True) -> ProviderRegistry:
    """The registry of every `ailab.providers` entry point (built-ins only with `load_plugins=False`)."""
    reg = ProviderRegistry()
    plugins.each(plugins.PROVIDERS, lambda _plugin, register: register(reg), third_party=load_plugins)
    return reg
