"""The writer's fast path: one-pass row building (prices, interning, rollup sums), NULL markers on SQLite,
COPY on PostgreSQL, exact hourly pricing without Decimal, interning safe against a second writer.
Runs on SQLite and on a real PostgreSQL where a database is involved."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ailab.db import make_engine, migrate
from ailab.gateway.types import Usage
from ailab.ledger import MIGRATIONS, LedgerWriter, PriceBook, UsageEvent, schema, totals, usage_report
from ailab.ledger import writer as writer_module
from ailab.ledger.pricing import TokenRates, hourly_pricer, rates_pricer
from ailab.ledger.rows import COLUMNS, daily_totals
from ailab.types import PICO
from tests.ledger.test_writer import dep


def _mixed_events(n: int, seed: int = 11) -> list[UsageEvent]:
    """Every shape a row can take: several days, errors, streamed (with ttft) and not, no user or project,
    no deployment, an unknown price, a price fixed on the hot path, GPU-hour and library prices."""
    rng = random.Random(seed)
    now = time.time()
    deps = [
        dep("lib"),
        dep("tier", provider="anthropic", price_id="anthropic", model="claude-sonnet-4-5"),
        dep("gpu", provider="ollama", price_id=None, model="llama3", cost_per_hour=0.8),
        dep("unk", provider="ollama", price_id=None, model="llama3"),
        None,
    ]
    out = []
    for i in range(n):
        d = rng.choice(deps)
        failed = rng.random() < 0.1
        stream = rng.random() < 0.5
        key = rng.randrange(6)
        out.append(
            UsageEvent(
                request_id=f"r{seed}-{i}",
                ts=now - rng.uniform(0, 5 * 86400),
                endpoint=schema.ENDPOINT_CHAT,
                group=d.group if d else "nogroup",
                deployment=d,
                key_id=None if key == 0 else f"k{key}",
                user_id=None if key < 2 else f"u{key % 3}",
                project_id=None if key < 3 else "p1",
                usage=Usage(0, 0) if failed else Usage(rng.randint(1, 300_000), rng.randint(0, 900), 7),
                latency_s=rng.random() * 4,
                ttft_s=rng.random() if stream else None,
                status=502 if failed else 200,
                error_type="upstream_error" if failed else None,
                stream=stream,
                priced=i % 17 == 0,
                cost_pusd=123_456 if i % 17 == 0 else None,
            )
        )
    return out


def _stored_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*(schema.requests.c[c] for c in COLUMNS)))]


def test_rollup_equals_the_rows_it_sums(engine, tmp_path):
    """The rollup summed on the way equals a sum over the stored rows, group for group."""
    events = _mixed_events(3000)
    w = LedgerWriter(engine, PriceBook(), tmp_path, batch_size=701, flush_interval=0.01)
    w.start()
    for ev in events:
        w.submit(ev)
    w.stop()
    rows = _stored_rows(engine)
    assert len(rows) == len(events) and w.spilled == 0
    with engine.connect() as conn:
        d = schema.daily
        stored = {
            tuple(r[: 1 + len(schema.DAILY_DIMS)]): [int(x) for x in r[1 + len(schema.DAILY_DIMS) :]]
            for r in conn.execute(
                select(d.c.day, *(d.c[c] for c in (*schema.DAILY_DIMS, *schema.DAILY_SUMS)))
            )
        }
    assert stored == daily_totals(rows)


def test_missing_values_are_stored_as_null(engine, tmp_path):
    w = LedgerWriter(engine, PriceBook(), tmp_path, flush_interval=0.01)
    w.start()
    unknown = dep("unk", provider="ollama", price_id=None, model="llama3")
    base = {"endpoint": schema.ENDPOINT_CHAT, "latency_s": 0.25, "stream": False}
    w.submit(
        UsageEvent(
            request_id="bare", ts=time.time(), group="g", deployment=None, key_id=None, user_id=None,
            project_id=None, usage=Usage(3, 4), ttft_s=None, status=200, error_type=None, **base,
        )
    )  # fmt: skip
    w.submit(
        UsageEvent(
            request_id="full", ts=time.time(), group="unk", deployment=unknown, key_id="k", user_id="u",
            project_id="p", usage=Usage(3, 4), ttft_s=0.123, status=500, error_type="boom", **base,
        )
    )  # fmt: skip
    w.stop()
    rows = {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in _stored_rows(engine)}
    bare, full = rows["bare"], rows["full"]
    for col in (
        "key_dim",
        "user_dim",
        "project_dim",
        "deployment_dim",
        "provider_dim",
        "ttft_ms",
        "error_dim",
    ):
        assert bare[col] is None, col
        assert full[col] is not None and full[col] > 0, col
    assert bare["cost_pusd"] is None and full["cost_pusd"] is None  # no price known: NULL, never 0 or -1
    assert full["ttft_ms"] == 123 and bare["group_dim"] > 0
    assert totals(engine).unpriced == 2


def test_hourly_pricing_equals_the_decimal_expression():
    """The float fast path gives exactly round(rate × Decimal(str(latency)) / 3600), half-even, including
    latencies that land on (or a hair off) a half pico-USD."""
    rng = random.Random(5)
    u = Usage()
    for hourly in ("0.8", "3.6", "0.15", "0.123456789", "1234.5", "0.0001", "2.718281828459045"):
        rate = Decimal(hourly) * PICO
        price = hourly_pricer(rate)
        latencies = [rng.random() * 3 for _ in range(3000)] + [rng.random() * 1e5 for _ in range(300)]
        for k in range(300):  # rate × latency / 3600 = k + 0.5 exactly, then its nearest doubles
            tie = (Decimal(2 * k + 1) / 2) * 3600 / rate
            latencies += [float(tie), float(str(tie)[:14]), float(str(tie)[:9])]
        latencies += [0.0, 1e-300, 2.0, 7200.0]
        for lat in latencies:
            assert price(u, lat, False) == round(rate * Decimal(str(lat)) / 3600), (hourly, lat)


def test_fractional_pico_rates_stay_exact():
    rates = TokenRates(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), Decimal("0.1875"))
    price = rates_pricer(rates)
    for p, c, ca, cw in [(1, 1, 0, 0), (3, 7, 1, 1), (1_000_001, 3, 999, 2), (0, 0, 0, 0)]:
        u = Usage(prompt_tokens=p, completion_tokens=c, cached_tokens=ca, cache_write_tokens=cw)
        want = (Decimal("0.15") * (p - ca - cw) + Decimal("0.6") * c + Decimal("0.075") * ca) + Decimal(
            "0.1875"
        ) * cw
        assert price(u, 1.0, False) == int(want.to_integral_value())


def test_two_writers_intern_the_same_new_dimensions(database_url, tmp_path):
    """Two writers (as two gateway workers) meeting the same new keys at once: no batch fails, so none is
    spilled even with no backlog allowance (max_queue=1 spills a batch at its first failure)."""
    migrate(make_engine(database_url), MIGRATIONS)
    engines = [make_engine(database_url) for _ in range(2)]
    writers = [
        LedgerWriter(e, PriceBook(), tmp_path / f"w{i}", batch_size=50, flush_interval=0.001, max_queue=1)
        for i, e in enumerate(engines)
    ]
    for w in writers:
        w.start()
    go = threading.Barrier(2)

    def feed(w: LedgerWriter, seed: int) -> None:
        events = _mixed_events(600, seed)
        go.wait()
        for i, ev in enumerate(events):
            ev.key_id = f"new{i % 40}"
            w.submit(ev)
            if i % 25 == 0:
                time.sleep(0.002)

    threads = [threading.Thread(target=feed, args=(w, i)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.stop()
    assert [w.spilled for w in writers] == [0, 0]
    assert totals(engines[0]).requests == 1200
    assert len(usage_report(engines[0], "key")) == 40
    for e in engines:
        e.dispose()


def test_a_failed_batch_keeps_its_interned_dimensions(engine, tmp_path, monkeypatch):
    """Dimensions are interned in their own transaction: a batch that fails after interning and is retried
    refers to ids that exist."""
    real = writer_module.write_batch
    calls = []

    def flaky(conn, batch):
        calls.append(len(batch.rows))
        if len(calls) == 1:
            raise OperationalError("INSERT", None, Exception("disk I/O error"))
        real(conn, batch)

    monkeypatch.setattr(writer_module, "write_batch", flaky)
    w = LedgerWriter(engine, PriceBook(), tmp_path, flush_interval=0.01)
    w.start()
    for ev in _mixed_events(50):
        ev.key_id = "fresh-key"
        w.submit(ev)
    w.flush()
    w.stop()
    assert len(calls) >= 2 and w.spilled == 0
    assert [r.name for r in usage_report(engine, "key")] == ["fresh-key"]
    assert totals(engine).requests == 50
