"""The batched writer, pricing and reports, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import pytest
from genai_prices import Usage as PUsage
from genai_prices import calc_price
from sqlalchemy import select

from ailab.config.models import ModelInfo
from ailab.db import make_engine, migrate
from ailab.gateway.types import Deployment, Usage
from ailab.ledger import MIGRATIONS, LedgerWriter, PriceBook, UsageEvent, schema, totals, usage_report


def dep(group="g", provider="openai", price_id="openai", model="gpt-4o-mini", **info) -> Deployment:
    return Deployment(
        id=f"{group}:{provider}/{model}#0",
        group=group,
        provider=provider,
        provider_label=provider,
        price_id=price_id,
        model=model,
        api_base="http://x",
        api_key=None,
        info=ModelInfo(**info),
    )


def event(d: Deployment | None, p=100, c=20, cached=0, status=200, latency=0.5, key="k1", ts=None, **kw):
    return UsageEvent(
        request_id=kw.get("request_id") or os.urandom(12).hex(),
        ts=ts or time.time(),
        endpoint=schema.ENDPOINT_CHAT,
        group=d.group if d else "g",
        deployment=d,
        key_id=key,
        user_id=None,
        project_id=None,
        usage=Usage(prompt_tokens=p, completion_tokens=c, cached_tokens=cached),
        latency_s=latency,
        ttft_s=None,
        status=status,
        error_type=kw.get("error"),
        stream=False,
    )


def _writer(engine, tmp_path, **kw):
    w = LedgerWriter(engine, PriceBook(kwh_price=0.30), tmp_path / "spill", flush_interval=0.01, **kw)
    w.start()
    return w


def test_migrations_are_recorded_once(engine):
    assert migrate(engine, MIGRATIONS) == []


def test_costs_by_source(engine, tmp_path):
    w = _writer(engine, tmp_path)
    lib = dep("lib")
    override = dep("ovr", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    gpu = dep("gpu", provider="ollama", price_id=None, model="llama3", cost_per_hour=3.6)
    power = dep("pow", provider="ollama", price_id=None, model="llama3", watts=500)
    unknown = dep("unk", provider="ollama", price_id=None, model="llama3")
    for d in (lib, override, gpu, power, unknown):
        w.submit(event(d, p=1000, c=100, cached=200 if d is lib else 0, latency=2.0))
    w.submit(event(lib, p=0, c=0, status=502, error="upstream_error"))
    w.stop()
    by = {r.name: r for r in usage_report(engine, "model")}
    expected_lib = calc_price(
        PUsage(input_tokens=1000, output_tokens=100, cache_read_tokens=200),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert by["lib"].cost_usd == expected_lib
    assert by["ovr"].cost_usd == Decimal("0.0012")  # 1000 × 1e-6 + 100 × 2e-6
    assert by["gpu"].cost_usd == Decimal("0.002")  # 3.6 $/h × 2 s
    assert by["pow"].cost_usd == Decimal("0.000083333333")  # 0.5 kW × 0.30 $/kWh × 2 s, rounded to pico-USD
    assert by["unk"].unpriced == 1 and by["unk"].cost_pusd == 0
    assert by["lib"].errors == 1 and by["lib"].requests == 2
    with engine.connect() as conn:
        costs = [r.cost_pusd for r in conn.execute(select(schema.requests.c.cost_pusd))]
    assert None in costs and 0 in costs  # unknown stays NULL; a failed call with no tokens costs 0


def test_reports_group_and_filter(engine, tmp_path):
    w = _writer(engine, tmp_path, batch_size=7)
    a, b = dep("a"), dep("b", provider="groq", price_id="groq", model="llama-3.1-8b-instant")
    old = time.time() - 10 * 86400
    for i in range(50):
        w.submit(event(a if i % 2 else b, p=10, c=1, key=f"k{i % 3}", ts=old if i < 10 else None))
    w.stop()
    assert totals(engine).requests == 50
    recent = totals(engine, since=time.time() - 86400)
    assert recent.requests == 40 and recent.prompt_tokens == 400
    assert {r.name for r in usage_report(engine, "provider")} == {"openai", "groq"}
    assert sum(r.requests for r in usage_report(engine, "key")) == 50
    days = usage_report(engine, "day")
    assert len(days) == 2 and sum(r.requests for r in days) == 50
    with pytest.raises(ValueError, match="--by"):
        usage_report(engine, "colour")


def test_unavailable_database_spills_and_next_start_reimports(database_url, tmp_path):
    engine = make_engine(database_url)  # not migrated: every insert fails
    w = _writer(engine, tmp_path)
    for _ in range(5):
        w.submit(event(dep(), p=7, c=3))
    deadline = time.monotonic() + 10
    while w.write_error is None and time.monotonic() < deadline:  # the writer has tried and failed
        time.sleep(0.01)
    w.stop()
    assert w.spilled == 5 and w.dropped == 0
    migrate(engine, MIGRATIONS)
    w2 = _writer(engine, tmp_path)
    w2.stop()
    t = totals(engine)
    assert (t.requests, t.prompt_tokens, t.completion_tokens) == (5, 35, 15) and t.cost_pusd > 0
    assert not list((tmp_path / "spill").glob("*.jsonl"))
    engine.dispose()


def test_backlog_bound_spills_while_database_is_down(database_url, tmp_path):
    engine = make_engine(database_url)  # not migrated: the database refuses every batch
    lost: list[tuple[str, int]] = []
    w = LedgerWriter(
        engine,
        PriceBook(),
        tmp_path / "spill",
        batch_size=5,
        flush_interval=0.01,
        max_queue=10,
        on_lost=lambda kind, n: lost.append((kind, n)),
    )
    w.start()
    for _ in range(50):
        w.submit(event(dep(), p=1, c=1))
    deadline = time.monotonic() + 10
    while len(w.queue) >= 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(w.queue) < 10  # memory stays bounded while the database is down
    w.stop()
    assert w.spilled == 50 and w.dropped == 0
    assert sum(n for kind, n in lost if kind == "spilled") == 50
    engine.dispose()


def test_rollup_windows_are_exact(engine, tmp_path):
    """Whole days from the rollup plus the partial first day from raw rows equal a brute-force sum."""
    import random

    rng = random.Random(7)
    w = _writer(engine, tmp_path, batch_size=97)
    now = time.time()
    deps = [dep("a"), dep("b", provider="groq", price_id="groq", model="llama-3.1-8b-instant")]
    events = []
    for _ in range(600):
        ev = event(
            rng.choice(deps),
            p=rng.randint(1, 500),
            c=rng.randint(0, 50),
            key=f"k{rng.randint(0, 3)}",
            ts=now - rng.uniform(0, 40 * 86400),
            status=rng.choice([200, 200, 200, 502]),
        )
        events.append(ev)
        w.submit(ev)
    w.stop()
    for since in (None, now - 86400 * 7.3, now - 86400 * 30, now - 3600, float(int(now // 86400) * 86400)):
        want = [e for e in events if since is None or e.ts * 1000 >= int(since * 1000)]
        got = usage_report(engine, "key", since)
        assert sum(r.requests for r in got) == len(want)
        assert sum(r.prompt_tokens for r in got) == sum(e.usage.prompt_tokens for e in want)
        assert sum(r.errors for r in got) == sum(e.status >= 400 for e in want)
        by_day = usage_report(engine, "day", since)
        assert sum(r.requests for r in by_day) == len(want)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"),
        ("openai", "gpt-4o-mini"),
        ("google", "gemini-2.5-flash"),
    ],
)
def test_fast_pricing_equals_the_library_including_tiers(provider, model):
    import random

    rng = random.Random(3)
    book = PriceBook()
    d = dep(provider=provider, price_id=provider, model=model)
    for _ in range(300):
        prompt = rng.choice([rng.randint(0, 5000), rng.randint(150_000, 400_000), 200_000, 200_001])
        cached = rng.randint(0, prompt // 2)
        written = rng.randint(0, (prompt - cached) // 2) if provider == "anthropic" else 0
        u = Usage(
            prompt_tokens=prompt,
            completion_tokens=rng.randint(0, 4000),
            cached_tokens=cached,
            cache_write_tokens=written,
        )
        want = calc_price(
            PUsage(
                input_tokens=prompt,
                output_tokens=u.completion_tokens,
                cache_read_tokens=cached or None,
                cache_write_tokens=written or None,
            ),
            model_ref=model,
            provider_id=provider,
        ).total_price
        assert Decimal(book.cost_pusd(d, u, 1.0, False)) / 10**12 == want, (prompt, u)


def test_an_unexpected_error_spills_the_batch_and_the_writer_goes_on(engine, tmp_path, monkeypatch):
    w = _writer(engine, tmp_path)
    real = w._write
    calls = {"n": 0}

    def flaky(events):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug")
        real(events)

    monkeypatch.setattr(w, "_write", flaky)
    w.submit(event(dep(), p=1, c=1))
    assert w.wait_settled(1)  # the first batch failed and was spilled
    w.submit(event(dep(), p=2, c=2))
    w.stop()
    assert w.spilled == 1 and w.dropped == 0
    assert totals(engine).requests == 1  # the second row was written: the thread survived
    _writer(engine, tmp_path).stop()  # the next start re-imports the spilled row
    assert totals(engine).requests == 2


@pytest.mark.parametrize("journal", [True, False])
def test_counts_say_what_was_submitted_and_settled(engine, tmp_path, journal):
    w = LedgerWriter(engine, PriceBook(), tmp_path / "spill", flush_interval=30.0, journal=journal)
    w.start()  # a 30 s interval: only a wait wakes it
    for _ in range(7):
        w.submit(event(dep(), p=1, c=1))
    assert w.submitted == 7
    assert w.wait_settled(7)  # wakes the writer: no flush interval waited out
    assert w.settled == 7 and w.written == 7
    assert not w.wait_settled(8, timeout=0.05)  # an event never submitted is never waited for long
    w.stop()
    assert totals(engine).requests == 7


@pytest.mark.parametrize("journal", [True, False])
def test_a_batch_is_written_in_slices_that_yield_the_gil(engine, tmp_path, journal):
    """Rows are built, inserted and reported in slices with a pause between two (the writer gives the GIL
    back to the event loop); every row still lands once, in one transaction, with its cost."""
    seen: list[list[tuple[UsageEvent, int | None]]] = []
    w = LedgerWriter(
        engine,
        PriceBook(),
        tmp_path / "spill",
        flush_interval=30.0,
        journal=journal,
        on_written=seen.append,
        slice_rows=8,
        gil_pause=0.0,
    )
    pauses: list[int] = []
    w._pause = lambda: pauses.append(w.written)  # type: ignore[method-assign]
    d = dep(input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    events = [event(d, p=10, c=i, key=f"k{i % 3}") for i in range(50)]
    w.start()
    for ev in events:
        w.submit(ev)
    assert w.wait_settled(50)
    w.stop()
    # 50 rows in slices of 8: 6 pauses building, 6 inserting (before the commit), 6 reporting (after it).
    assert len(pauses) == 18 and pauses[:12] == [0] * 12 and pauses[12:] == [50] * 6
    assert [len(s) for s in seen] == [8, 8, 8, 8, 8, 8, 2]
    assert [ev for s in seen for ev, _ in s] == events
    assert all(cost == 10 * 10**6 + i * 2 * 10**6 for i, (_, cost) in enumerate(x for s in seen for x in s))
    assert totals(engine).requests == 50 and w.written == 50 and w.spilled == 0
