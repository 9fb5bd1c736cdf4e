"""Parts of a usage total priced at their own rate: Anthropic's 1-hour cache writes, OpenAI's audio tokens.
From the price library, the cost is the library's own `calc_price`; from `model_info`, LiteLLM's fields."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as PUsage
from genai_prices import calc_price

from ailab.gateway.types import Usage
from ailab.ledger import PriceBook
from ailab.types import PICO
from tests.ledger.test_writer import dep

WRITES = Usage(prompt_tokens=5_000, completion_tokens=300, cached_tokens=1_000, cache_write_tokens=3_000)


@pytest.mark.parametrize(("prompt", "hour"), [(5_000, 2_000), (5_000, 3_000), (250_000, 2_000)])
def test_anthropic_1h_cache_writes_cost_what_the_library_says(prompt: int, hour: int) -> None:
    d = dep("c", provider="anthropic", price_id="anthropic", model="claude-sonnet-4-5")
    u = Usage(prompt, 300, cached_tokens=1_000, cache_write_tokens=3_000, cache_write_1h_tokens=hour)
    expected = calc_price(
        PUsage(
            input_tokens=prompt,
            output_tokens=300,
            cache_read_tokens=1_000,
            cache_write_tokens=3_000,
            cache_write_5m_tokens=3_000 - hour,
            cache_write_1h_tokens=hour,
        ),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    ).total_price
    cost = PriceBook().cost_pusd(d, u, 1.0, False)
    assert cost == int(expected * PICO)
    assert cost > PriceBook().cost_pusd(d, Usage(prompt, 300, 1_000, 3_000), 1.0, False)  # 1 h costs more


def test_audio_tokens_cost_what_the_library_says() -> None:
    d = dep("a", model="gpt-audio")
    u = Usage(1_000, 200, input_audio_tokens=400, output_audio_tokens=150)
    expected = calc_price(
        PUsage(input_tokens=1_000, output_tokens=200, input_audio_tokens=400, output_audio_tokens=150),
        model_ref="gpt-audio",
        provider_id="openai",
    ).total_price
    assert PriceBook().cost_pusd(d, u, 1.0, False) == int(expected * PICO)


def test_model_info_rates_for_1h_writes_and_audio_use_litellms_names() -> None:
    d = dep(
        "m",
        input_cost_per_token=1e-6,
        output_cost_per_token=4e-6,
        cache_creation_input_token_cost=1.25e-6,
        cache_creation_input_token_cost_above_1hr=2e-6,
        input_cost_per_audio_token=10e-6,
        output_cost_per_audio_token=20e-6,
    )
    u = Usage(1_000, 100, cache_write_tokens=300, cache_write_1h_tokens=100, input_audio_tokens=50,
              output_audio_tokens=40)  # fmt: skip
    usd = (
        Decimal("1e-6") * (1_000 - 300 - 50)
        + Decimal("1.25e-6") * 200
        + Decimal("2e-6") * 100
        + Decimal("10e-6") * 50
        + Decimal("4e-6") * 60
        + Decimal("20e-6") * 40
    )
    assert PriceBook().cost_pusd(d, u, 1.0, False) == int(usd * PICO)
    plain = dep("p", input_cost_per_token=1e-6, output_cost_per_token=4e-6)  # no own rates: the totals'
    assert PriceBook().cost_pusd(plain, u, 1.0, False) == int(
        (Decimal("1e-6") * 1_000 + Decimal("4e-6") * 100) * PICO
    )


def test_usage_round_trips_its_parts_through_the_openai_shape() -> None:
    u = Usage(10, 5, 2, 4, 1, cache_write_1h_tokens=3, input_audio_tokens=2, output_audio_tokens=1)
    assert Usage.from_openai(u.to_openai()) == u
    assert Usage.from_openai(WRITES.to_openai()) == WRITES


def test_ledger_0004_adds_the_1h_column_to_an_existing_ledger(database_url) -> None:
    from sqlalchemy import text

    from ailab.db import make_engine, migrate
    from ailab.ledger import MIGRATIONS

    engine = make_engine(database_url)
    try:
        migrate(engine, MIGRATIONS[:2])
        with engine.begin() as conn:  # a ledger made before the column existed, with a row in it
            conn.exec_driver_sql("ALTER TABLE ledger_requests DROP COLUMN cache_write_1h_tokens")
            conn.exec_driver_sql(
                "INSERT INTO ledger_requests (request_id, ts_ms, endpoint, prompt_tokens, completion_tokens, "
                "cached_tokens, cache_write_tokens, reasoning_tokens, latency_ms, status, flags, retries) "
                "VALUES ('old', 1, 1, 10, 5, 0, 4, 0, 3, 200, 0, 0)"
            )
        assert migrate(engine, MIGRATIONS) == [
            "ledger_0003_unique_request_id",
            "ledger_0004_cache_write_1h_tokens",
            "ledger_0005_app",
            "ledger_0006_totals",
            "ledger_0007_path",
        ]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT cache_write_1h_tokens FROM ledger_requests")).scalar_one() == 0
    finally:
        engine.dispose()
