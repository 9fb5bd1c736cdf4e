"""The narrow totals (`ledger_totals`, hourly and daily per dimension): reports and series read them, and they
equal brute-force sums of the rows for random windows, filters and breakdowns; the migration backfills them."""

from __future__ import annotations

import random
import time

from sqlalchemy import text

from ailab.db import make_engine, migrate
from ailab.ledger import MIGRATIONS, schema, usage_report, usage_series
from tests.ledger.test_writer import _writer, dep, event


def _fill(engine, tmp_path, n=700, seed=11):
    rng = random.Random(seed)
    w = _writer(engine, tmp_path, batch_size=89)
    now = time.time()
    deps = [dep("a"), dep("b", provider="groq", price_id="groq", model="llama-3.1-8b-instant"), dep("c")]
    events = []
    for _ in range(n):
        ev = event(
            rng.choice(deps),
            p=rng.randint(1, 500),
            c=rng.randint(0, 50),
            key=f"k{rng.randint(0, 3)}",
            ts=now - rng.choice([rng.uniform(0, 2 * 86400), rng.uniform(0, 40 * 86400)]),
            status=rng.choice([200, 200, 200, 502]),
        )
        events.append(ev)
        w.submit(ev)
    w.stop()
    return events, now


def _windows(now, rng):
    return [None, now - 3600, now - 86400, now - 86400 * 7.3, float(int(now // 3600) * 3600)] + [
        now - rng.uniform(0, 45 * 86400) for _ in range(6)
    ]


def _check(engine, events, now):
    rng = random.Random(3)
    for since in _windows(now, rng):
        want = [e for e in events if since is None or e.ts * 1000 >= int(since * 1000)]
        for by, name in (("key", lambda e: e.key_id), ("model", lambda e: e.group)):
            got = {r.name: (r.requests, r.prompt_tokens, r.errors) for r in usage_report(engine, by, since)}
            brute: dict[str, tuple[int, int, int]] = {}
            for e in want:
                a, b, c = brute.get(name(e), (0, 0, 0))
                brute[name(e)] = (a + 1, b + e.usage.prompt_tokens, c + (e.status >= 400))
            assert got == brute, (since, by)
        # one filter of the reported kind, and by day under that filter
        keys = {"k1", "k2"}
        got = usage_report(engine, "key", since, where={"key": keys})
        assert sum(r.requests for r in got) == sum(e.key_id in keys for e in want)
        days = usage_report(engine, "day", since, where={"key": keys})
        assert sum(r.requests for r in days) == sum(e.key_id in keys for e in want)
        # a filter of another kind goes through the daily rollup, and agrees
        other = usage_report(engine, "model", since, where={"key": keys})
        assert sum(r.requests for r in other) == sum(r.requests for r in got)
        # a filter on the model group (interned as kind "group") finds its rows
        by_model = usage_report(engine, "key", since, where={"model": {"b"}})
        assert sum(r.requests for r in by_model) == sum(e.group == "b" for e in want)
    for since in (now - 3600 * 5.5, now - 86400, now - 86400 * 2.2):
        want = [e for e in events if e.ts * 1000 >= int(since * 1000)]
        series = usage_series(engine, since, "hour")
        assert sum(b["requests"] for b in series) == len(want)
        per_hour: dict[int, int] = {}
        for e in want:
            t = int(e.ts * 1000) // schema.HOUR_MS * 3600
            per_hour[t] = per_hour.get(t, 0) + 1
        assert {b["t"]: b["requests"] for b in series if b["requests"]} == per_hour
        mine = usage_series(engine, since, "hour", where={"key": {"k0"}})
        assert sum(b["requests"] for b in mine) == sum(e.key_id == "k0" for e in want)
        cost = sum(b["cost_pusd"] for b in series)
        assert cost == sum(r.cost_pusd for r in usage_report(engine, "key", since))


def test_reports_and_series_from_the_totals_equal_brute_force_sums(engine, tmp_path):
    events, now = _fill(engine, tmp_path)
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM ledger_totals WHERE span = 0")).scalar() > 0
    _check(engine, events, now)


def test_migration_backfills_the_totals_from_existing_rows(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine, MIGRATIONS)
    events, now = _fill(engine, tmp_path, n=300, seed=5)
    with engine.begin() as c:
        written = c.execute(text("SELECT * FROM ledger_totals ORDER BY span, kind, t, dim")).all()
        c.execute(text("DROP TABLE ledger_totals"))
        c.execute(text("DELETE FROM ailab_migrations WHERE name = 'ledger_0006_totals'"))
    assert migrate(engine, MIGRATIONS) == ["ledger_0006_totals"]
    with engine.connect() as c:
        assert c.execute(text("SELECT * FROM ledger_totals ORDER BY span, kind, t, dim")).all() == written
    _check(engine, events, now)
    engine.dispose()
