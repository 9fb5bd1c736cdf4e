"""Cost of a request in pico-USD (exact integers), from, in order:
1. the deployment's `model_info` token prices (LiteLLM's input_cost_per_token / output_cost_per_token …);
2. self-hosted costing: `model_info.cost_per_hour` (GPU-hour) or `watts` × `kwh_price`, by the serving
   deployment's busy time shared among the requests in flight on it (the gateway's `BusyClock`), so that the
   requests' costs add up to the hourly price × the deployment's busy wall time;
3. the offline price library genai-prices;
otherwise None ("unknown", counted by a metric), never a silent 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.types import TieredPrices

from ailab.types import PICO, PICO_PER_USD, DeploymentRef, PriceInfo, Usage

MTOK_TO_PICO_PER_TOKEN = Decimal(PICO_PER_USD // 10**6)  # $/MTok in pico-USD per token


@dataclass(frozen=True, slots=True)
class TokenRates:
    """Pico-USD per token; Decimal so fractional pico rates stay exact until the final rounding."""

    input: Decimal | int
    output: Decimal | int
    cache_read: Decimal | int
    cache_write: Decimal | int
    # Rates of the parts of a total priced apart (see Usage.special); None: the total's own rate.
    cache_write_1h: Decimal | int | None = None
    input_audio: Decimal | int | None = None
    output_audio: Decimal | int | None = None

    def __post_init__(self) -> None:
        # Prices are almost always whole pico-USD per token: integer arithmetic is exact and much faster.
        for name in RATE_NAMES:
            value = getattr(self, name)
            if isinstance(value, Decimal) and value == value.to_integral_value():
                object.__setattr__(self, name, int(value))

    def cost(self, u: Usage) -> int:
        fresh = max(0, u.prompt_tokens - u.cached_tokens - u.cache_write_tokens)
        total = (
            fresh * self.input
            + u.cached_tokens * self.cache_read
            + u.cache_write_tokens * self.cache_write
            + u.completion_tokens * self.output
        )
        if u.special:  # each part priced at its own rate instead of its total's
            for n, rate, base in (
                (u.cache_write_1h_tokens, self.cache_write_1h, self.cache_write),
                (u.input_audio_tokens, self.input_audio, self.input),
                (u.output_audio_tokens, self.output_audio, self.output),
            ):
                if n and rate is not None:
                    total += n * (rate - base)
        return total if isinstance(total, int) else int(total.to_integral_value())


RATE_NAMES = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "input_audio", "output_audio")


def _d(x: float | None) -> Decimal | None:
    return None if x is None else Decimal(str(x))


def rates_from_info(info: PriceInfo) -> TokenRates | None:
    if info.input_cost_per_token is None and info.output_cost_per_token is None:
        return None
    inp = (_d(info.input_cost_per_token) or Decimal(0)) * PICO
    out = (_d(info.output_cost_per_token) or Decimal(0)) * PICO
    read = _d(info.cache_read_input_token_cost)
    write = _d(info.cache_creation_input_token_cost)
    return TokenRates(
        inp,
        out,
        inp if read is None else read * PICO,
        inp if write is None else write * PICO,
        *(
            None if x is None else x * PICO
            for x in (
                _d(info.cache_creation_input_token_cost_above_1hr),
                _d(info.input_cost_per_audio_token),
                _d(info.output_cost_per_audio_token),
            )
        ),
    )


Pricer = Callable[[Usage, float, bool], int | None]
"""Prices one request: (usage, billed seconds, failed) -> pico-USD, or None when no price is known. Billed
seconds are the request's share of the serving deployment's busy time (`UsageEvent.billed_s`)."""


class PriceBook:
    """Resolves a price per deployment once, as a `Pricer` closure, so pricing a row costs a call and a few
    integer multiplications. Cached by deployment object (deployments are built once per server start)."""

    def __init__(self, kwh_price: float | None = None) -> None:
        self.kwh_price = kwh_price
        self._library: dict[tuple[str, str], tuple[TokenRates | TieredRates | None, Any] | None] = {}
        self._pricers: dict[DeploymentRef, Pricer] = {}

    def cost_pusd(self, dep: DeploymentRef | None, usage: Usage, seconds: float, failed: bool) -> int | None:
        return self.pricer(dep)(usage, seconds, failed)

    def pricer(self, dep: DeploymentRef | None) -> Pricer:
        if dep is None:
            return _no_deployment
        found = self._pricers.get(dep)
        if found is None:
            found = self._pricers[dep] = self._resolve(dep)
        return found

    def _resolve(self, dep: DeploymentRef) -> Pricer:
        """In order: the deployment's own token prices, its hourly cost, the price library."""
        rates = rates_from_info(dep.info)
        if rates is not None:
            return rates_pricer(rates)
        hourly = self._hourly(dep.info)
        if hourly is not None:
            return hourly_pricer(hourly * PICO)
        entry = self._library_entry(dep)
        if entry is None:
            return consumed_only(_unknown)
        library_rates, model_price = entry
        exact = _library_pricer(model_price)
        if library_rates is None:
            return consumed_only(exact)
        fast = rates_pricer(library_rates, consumed=True)

        def library(u: Usage, seconds: float, failed: bool) -> int | None:
            # Parts with rates of their own (1-hour cache writes, audio): the library's own arithmetic.
            return exact(u, seconds, failed) if u.special else fast(u, seconds, failed)

        return library

    def _hourly(self, info: PriceInfo) -> Decimal | None:
        if info.cost_per_hour is not None:
            return Decimal(str(info.cost_per_hour))
        kwh = info.kwh_price if info.kwh_price is not None else self.kwh_price
        if info.watts is not None and kwh is not None:
            return Decimal(str(info.watts)) / 1000 * Decimal(str(kwh))
        return None

    def _library_entry(self, dep: DeploymentRef) -> tuple[TokenRates | TieredRates | None, Any] | None:
        if not dep.price_id:
            return None
        model = dep.info.base_model or dep.model
        key = (dep.price_id, model)
        if key not in self._library:
            self._library[key] = self._lookup(dep.price_id, model)
        return self._library[key]

    @staticmethod
    def _lookup(provider_id: str, model: str) -> tuple[TokenRates | TieredRates | None, Any] | None:
        """(precomputed rates for plain usage, or None if the price has parts this module does not model;
        the library's model price)."""
        try:
            found = calc_price(
                PriceUsage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider_id
            )
        except LookupError:
            return None
        mp = found.model_price
        fields = [mp.input_mtok, mp.output_mtok, mp.cache_read_mtok, getattr(mp, "cache_write_mtok", None)]
        if getattr(mp, "requests_kcount", None) is None and all(_simple(v) for v in fields):
            return TieredRates.build(fields), mp
        return None, mp  # prices this module does not model (per request, …): the library prices each request


def _no_deployment(u: Usage, _seconds: float, failed: bool) -> int | None:
    return 0 if failed and not (u.prompt_tokens or u.completion_tokens) else None


def _unknown(_u: Usage, _seconds: float, _failed: bool) -> int | None:
    return None


def consumed_only(inner: Pricer) -> Pricer:
    """A request that consumed no tokens (e.g. an upstream error) has a known cost of zero."""

    def price(u: Usage, seconds: float, failed: bool) -> int | None:
        if not (u.prompt_tokens or u.completion_tokens):
            return 0
        return inner(u, seconds, failed)

    return price


def rates_pricer(rates: TokenRates | TieredRates, consumed: bool = False) -> Pricer:
    """Token prices as a closure; whole pico-USD rates (the usual case) take an all-integer path.
    `consumed`: a request with no prompt or completion tokens costs 0 (see `consumed_only`)."""
    if isinstance(rates, TieredRates):
        return _tiered_pricer(rates, consumed)
    values = (rates.input, rates.output, rates.cache_read, rates.cache_write)
    if not all(type(x) is int for x in values) or _has_parts(rates):  # Decimal (exact), or parts

        def decimal(u: Usage, _seconds: float, _failed: bool) -> int | None:
            return rates.cost(u)

        return consumed_only(decimal) if consumed else decimal
    i, o, r, w = (int(x) for x in values)

    def exact(u: Usage, _seconds: float, _failed: bool) -> int | None:
        p, c, ca, cw = u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens
        if consumed and not (p or c):
            return 0
        fresh = p - ca - cw
        return (fresh if fresh > 0 else 0) * i + ca * r + cw * w + c * o

    return exact


def _tiered_pricer(rates: TieredRates, consumed: bool) -> Pricer:
    levels = tuple((start, rates_pricer(level)) for start, level in reversed(rates.levels[1:]))
    base = rates_pricer(rates.levels[0][1])

    def tiered(u: Usage, seconds: float, failed: bool) -> int | None:
        p = u.prompt_tokens
        if consumed and not (p or u.completion_tokens):
            return 0
        for start, level in levels:  # highest tier first: the first one passed is the request's
            if p > start:
                return level(u, seconds, failed)
        return base(u, seconds, failed)

    return tiered


def hourly_pricer(pico_per_hour: Decimal) -> Pricer:
    """Self-hosted costing: the hourly price apportioned by the request's billed seconds (its share of the
    deployment's busy time), rounded half-even to pico-USD,
    exactly as `round(pico_per_hour * Decimal(str(seconds)) / 3600)`.

    That Decimal expression costs about a microsecond. A double computes the same quotient to within 2**-51
    relative error (four roundings of at most 2**-53 each: the rate to a double, the division by 3600, the
    latency's decimal repr against its double, the product), so wherever the double is farther than 2**-46
    relative from a rounding boundary (n + 0.5) its nearest integer is the exact one. Near a boundary, or out
    of the double's exact integer range, the Decimal expression decides."""
    per_second = float(pico_per_hour) / 3600.0
    margin = 2.0**-46

    def price(_u: Usage, seconds: float, _failed: bool) -> int | None:
        q = per_second * seconds
        if 0.0 <= q < 4503599627370496.0:  # 2**52: the integer part and the fraction are exact
            n = int(q)
            f = q - n
            if abs(f - 0.5) > q * margin:
                return n + 1 if f > 0.5 else n
        return round(pico_per_hour * Decimal(str(seconds)) / 3600)  # half-even, as to_integral_value

    return price


def _library_pricer(entry: Any) -> Pricer:
    def price(u: Usage, _seconds: float, _failed: bool) -> int | None:
        prices = entry.calc_price(_price_usage(u))
        return int((prices["total_price"] * PICO).to_integral_value())

    return price


@dataclass(frozen=True, slots=True)
class TieredRates:
    """genai-prices' "cliff" tiers: once the request's input tokens pass a tier's start, every token of the
    request pays that tier's price. Precomputed per level, so pricing a row costs a few multiplications."""

    levels: tuple[tuple[int, TokenRates], ...]  # (start, rates), ascending; the first start is -1

    @classmethod
    def build(cls, fields: list[Any]) -> TieredRates | TokenRates:
        starts = sorted({tier.start for f in fields if isinstance(f, TieredPrices) for tier in f.tiers})
        levels = tuple((s, _rates_at(fields, s + 1)) for s in [-1, *starts])
        return levels[0][1] if len(levels) == 1 else cls(levels)

    def cost(self, u: Usage) -> int:
        rates = self.levels[0][1]
        for start, level in self.levels[1:]:
            if u.prompt_tokens > start:
                rates = level
        return rates.cost(u)


def _simple(price: Any) -> bool:
    return price is None or isinstance(price, Decimal | int | TieredPrices)


def _rates_at(fields: list[Any], input_tokens: int) -> TokenRates:
    inp, out, read, write = (_per_token(_price_at(f, input_tokens)) for f in fields)
    zero = Decimal(0)
    base = inp or zero
    return TokenRates(base, out or zero, base if read is None else read, base if write is None else write)


def _price_at(price: Any, input_tokens: int) -> Any:
    if not isinstance(price, TieredPrices):
        return price
    current = price.base
    for tier in price.tiers:
        if input_tokens > tier.start:
            current = tier.price
    return current


def _per_token(mtok: Any) -> Decimal | None:
    return None if mtok is None else Decimal(mtok) * MTOK_TO_PICO_PER_TOKEN


def _has_parts(rates: TokenRates) -> bool:
    return not (rates.cache_write_1h is None and rates.input_audio is None and rates.output_audio is None)


def _price_usage(u: Usage) -> PriceUsage:
    """Our usage in the library's units, with the same fields its extractors take from each provider."""
    hour = u.cache_write_1h_tokens
    return PriceUsage(
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        cache_read_tokens=u.cached_tokens or None,
        cache_write_tokens=u.cache_write_tokens or None,
        cache_write_5m_tokens=(u.cache_write_tokens - hour) if hour else None,
        cache_write_1h_tokens=hour or None,
        input_audio_tokens=u.input_audio_tokens or None,
        output_audio_tokens=u.output_audio_tokens or None,
    )
