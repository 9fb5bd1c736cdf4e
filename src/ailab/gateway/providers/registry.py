"""Provider plugins: a registry the app factory builds; built-ins register the way third parties do.

Third-party providers register through the `ailab.providers` entry-point group: the entry point is a
callable taking the registry (`def register(registry): registry.add(MyProvider)`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from ailab.gateway.providers.base import Provider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alias:
    """A LiteLLM provider prefix served by one of our adapters, with its default base URL."""

    adapter: str
    api_base: str | None = None
    price_id: str | None = None  # genai-prices provider id


# LiteLLM's `<provider>/<model>` prefixes. OpenAI-compatible vendors reuse the openai adapter.
BUILTIN_ALIASES: dict[str, Alias] = {
    "openai": Alias("openai", "https://api.openai.com/v1", "openai"),
    "text-completion-openai": Alias("openai", "https://api.openai.com/v1", "openai"),
    "azure": Alias("azure", None, "azure"),
    "groq": Alias("openai", "https://api.groq.com/openai/v1", "groq"),
    "deepseek": Alias("openai", "https://api.deepseek.com/v1", "deepseek"),
    "mistral": Alias("openai", "https://api.mistral.ai/v1", "mistral"),
    "together_ai": Alias("openai", "https://api.together.xyz/v1", "together"),
    "openrouter": Alias("openai", "https://openrouter.ai/api/v1", "openrouter"),
    "fireworks_ai": Alias("openai", "https://api.fireworks.ai/inference/v1", "fireworks"),
    "xai": Alias("openai", "https://api.x.ai/v1", "x-ai"),
    "perplexity": Alias("openai", "https://api.perplexity.ai", "perplexity"),
    "cerebras": Alias("openai", "https://api.cerebras.ai/v1", "cerebras"),
    "hosted_vllm": Alias("openai"),
    "vllm": Alias("openai"),
    "openai_compatible": Alias("openai"),
    "llamacpp": Alias("openai", "http://127.0.0.1:8080/v1"),
    "lm_studio": Alias("openai", "http://127.0.0.1:1234/v1"),
    "ollama": Alias("ollama", "http://127.0.0.1:11434"),
    "ollama_chat": Alias("ollama", "http://127.0.0.1:11434"),
    "anthropic": Alias("anthropic", "https://api.anthropic.com", "anthropic"),
    "gemini": Alias("gemini", "https://generativelanguage.googleapis.com", "google"),
}

# Model names LiteLLM accepts without a prefix, inferred by family.
_PREFIX_GUESSES = (
    ("claude", "anthropic"),
    ("gemini", "gemini"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding", "openai"),
    ("chatgpt", "openai"),
)


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

    def add(self, adapter: type[Provider], *aliases: tuple[str, Alias]) -> None:
        self.adapters[adapter.name] = adapter
        self.aliases.setdefault(adapter.name, Alias(adapter.name, adapter.default_api_base))
        for prefix, alias in aliases:
            self.aliases[prefix] = alias

    def split(self, model: str) -> tuple[str, str]:
        """`groq/llama3-8b` → ("groq", "llama3-8b"); unprefixed names are inferred like LiteLLM does."""
        prefix, sep, rest = model.partition("/")
        if sep and prefix in self.aliases:
            return prefix, rest
        if sep and prefix in _KNOWN_LITELLM_PREFIXES:
            raise KeyError(
                f"provider {prefix!r} is not supported yet (supported: {', '.join(sorted(self.aliases))})"
            )
        for start, provider in _PREFIX_GUESSES:
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


def default_registry(load_plugins: bool = True) -> ProviderRegistry:
    from ailab.gateway.providers.anthropic import AnthropicProvider
    from ailab.gateway.providers.gemini import GeminiProvider
    from ailab.gateway.providers.ollama import OllamaProvider
    from ailab.gateway.providers.openai_compat import AzureOpenAIProvider, OpenAIProvider
    from ailab.knowledge.local_provider import LocalEmbedProvider

    reg = ProviderRegistry()
    for adapter in (
        OpenAIProvider,
        AzureOpenAIProvider,
        AnthropicProvider,
        GeminiProvider,
        OllamaProvider,
        LocalEmbedProvider,
    ):
        reg.add(adapter)
    reg.aliases.update(BUILTIN_ALIASES)
    if load_plugins:
        for ep in entry_points(group="ailab.providers"):
            try:
                ep.load()(reg)
            except Exception:
                log.exception("provider plugin %s failed to load; skipped", ep.name)
    return reg
