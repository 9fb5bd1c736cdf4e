"""The app dimension (ledger_0005_app): written with each row, summed in the rollup, reported `--by app`,
carried by journal lines, and added to a ledger made before it existed."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import text

from ailab.db import make_engine, migrate
from ailab.ledger import MIGRATIONS, LedgerWriter, PriceBook, usage_report
from ailab.ledger.records import journal_line, journal_record, spill_record
from tests.ledger.test_writer import dep, event


def test_rows_carry_their_app_and_reports_group_by_it(engine, tmp_path) -> None:
    w = LedgerWriter(engine, PriceBook(), tmp_path / "data", flush_interval=0.01)
    w.start()
    d = dep("gpt", input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    for i in range(3):
        ev = event(d, p=10)
        ev.app = "docs-qa" if i < 2 else None
        w.submit(ev)
    w.stop()
    rows = {r.name: r for r in usage_report(engine, "app", time.time() - 3600)}
    assert rows["docs-qa"].requests == 2 and rows["docs-qa"].prompt_tokens == 20
    assert rows["-"].requests == 1  # plain model calls have no app
    whole = {r.name: r.requests for r in usage_report(engine, "app", None)}  # from the daily rollup
    assert whole == {"docs-qa": 2, "-": 1}
    filtered = usage_report(engine, "model", None, where={"app": {"docs-qa"}})
    assert [(r.name, r.requests) for r in filtered] == [("gpt", 2)]


def test_a_journal_line_keeps_the_app_and_old_lines_still_read() -> None:
    ev = event(dep("gpt"))
    ev.app = "meeting-notes"
    line = orjson.loads(journal_line(ev, 5))
    assert journal_record(line) == spill_record(ev, 5)
    assert journal_record(line)["dims"]["app"] == "meeting-notes"
    old = [2, *line[1:8], *line[10:]]  # a version-2 line: no app or path dimension
    rec = journal_record(old)
    assert rec is not None and "app" not in rec["dims"] and rec["row"]["request_id"] == ev.request_id


def test_ledger_0005_adds_the_app_to_an_existing_ledger(database_url) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, MIGRATIONS[:4])
        with engine.begin() as conn:  # a ledger made before the app column, with a row and its rollup
            conn.exec_driver_sql("ALTER TABLE ledger_requests DROP COLUMN app_dim")
            conn.exec_driver_sql("DROP TABLE ledger_daily")
            conn.exec_driver_sql(
                "CREATE TABLE ledger_daily (day INTEGER, group_dim INTEGER, deployment_dim INTEGER, "
                "provider_dim INTEGER, key_dim INTEGER, user_dim INTEGER, project_dim INTEGER, "
                "error_dim INTEGER, requests BIGINT NOT NULL, errors BIGINT NOT NULL, "
                "prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, "
                "cached_tokens BIGINT NOT NULL, cost_pusd BIGINT NOT NULL, unpriced BIGINT NOT NULL, "
                "PRIMARY KEY (day, group_dim, deployment_dim, provider_dim, key_dim, user_dim, "
                "project_dim, error_dim))"
            )
            conn.exec_driver_sql(
                "INSERT INTO ledger_daily VALUES (1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 70, 14, 0, 99, 0)"
            )
        assert migrate(engine, MIGRATIONS) == ["ledger_0005_app", "ledger_0006_totals", "ledger_0007_path"]
        with engine.connect() as conn:
            got = conn.execute(text("SELECT app_dim, requests, cost_pusd FROM ledger_daily")).one()
            assert tuple(got) == (0, 7, 99)
            assert conn.execute(text("SELECT COUNT(app_dim) FROM ledger_requests")).scalar_one() == 0
        assert [(r.name, r.requests) for r in usage_report(engine, "app", None)] == [("-", 7)]
    finally:
        engine.dispose()
