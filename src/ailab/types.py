"""Value types shared between pillars: a leaf that imports no `ailab` package (tests/test_imports.py).

The gateway makes these, the ledger prices and stores them, limits and the console show them; putting them
here lets the ledger and the secret store sit below the gateway instead of importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

# Money: every amount is an integer count of pico-USD (10**-12 dollars), exact to add and compare.
PICO_PER_USD = 10**12
PICO = Decimal(PICO_PER_USD)  # the same unit, for Decimal arithmetic


def usd_to_pusd(usd: str | float | Decimal) -> int:
    """Dollars (as written in config, an API body or a flag) to pico-USD, rounded half-even."""
    return int((Decimal(str(usd)) * PICO).to_integral_value())


def pusd_to_usd(pusd: int) -> Decimal:
    """Pico-USD to exact dollars."""
    return Decimal(pusd) / PICO


@dataclass(slots=True)
class Usage:
    """Token usage in OpenAI's semantics: prompt_tokens include cached and cache-write tokens; each detail
    is a part of its total (cache_write_1h_tokens of cache_write_tokens, input_audio_tokens of
    prompt_tokens, output_audio_tokens and reasoning_tokens of completion_tokens), priced at its own rate."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_1h_tokens: int = 0  # Anthropic: written with a 1-hour lifetime (the rest: 5 minutes)
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def special(self) -> bool:
        """Has tokens priced apart from the plain input/output/cache rates."""
        return bool(self.cache_write_1h_tokens or self.input_audio_tokens or self.output_audio_tokens)

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
        creation = usage.get("cache_creation") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
            cache_write_1h_tokens=int(creation.get("ephemeral_1h_input_tokens") or 0),
            input_audio_tokens=int(details.get("audio_tokens") or 0),
            output_audio_tokens=int(out_details.get("audio_tokens") or 0),
        )

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        details = {"cached_tokens": self.cached_tokens, "audio_tokens": self.input_audio_tokens}
        out_details = {"reasoning_tokens": self.reasoning_tokens, "audio_tokens": self.output_audio_tokens}
        if any(details.values()):
            out["prompt_tokens_details"] = {k: v for k, v in details.items() if v}
        if self.cache_write_tokens:
            out["cache_creation_input_tokens"] = self.cache_write_tokens
        if self.cache_write_1h_tokens:  # Anthropic's breakdown of the cache writes by lifetime
            out["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_write_tokens - self.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            }
        if any(out_details.values()):
            out["completion_tokens_details"] = {k: v for k, v in out_details.items() if v}
        return out


class PriceInfo(Protocol):
    """The prices a deployment declares (config's `model_info`), as the ledger's pricing reads them."""

    @property
    def input_cost_per_token(self) -> float | None: ...
    @property
    def output_cost_per_token(self) -> float | None: ...
    @property
    def cache_read_input_token_cost(self) -> float | None: ...
    @property
    def cache_creation_input_token_cost(self) -> float | None: ...
    @property
    def cache_creation_input_token_cost_above_1hr(self) -> float | None: ...
    @property
    def input_cost_per_audio_token(self) -> float | None: ...
    @property
    def output_cost_per_audio_token(self) -> float | None: ...
    @property
    def cost_per_hour(self) -> float | None: ...
    @property
    def watts(self) -> float | None: ...
    @property
    def kwh_price(self) -> float | None: ...
    @property
    def base_model(self) -> str | None: ...


class DeploymentRef(Protocol):
    """The part of a gateway deployment the ledger needs: who served the request and at what price.

    Objects are compared by identity (the gateway builds each deployment once per start), so the ledger
    may cache a price per deployment."""

    @property
    def id(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def provider_label(self) -> str: ...
    @property
    def price_id(self) -> str | None: ...
    @property
    def model(self) -> str: ...
    @property
    def info(self) -> PriceInfo: ...
