"""The fallback path (ledger_0007): interned like a dimension, kept by journal lines (version 4), and a
version-3 line (no path) still read."""

from __future__ import annotations

import orjson
from sqlalchemy import text

from ailab.gateway.router import Attempt
from ailab.ledger.records import JOURNAL_VERSION, journal_line, journal_record, spill_record
from tests.ledger.test_writer import _writer, dep, event


def test_a_journal_line_keeps_the_path_and_version_3_lines_still_read() -> None:
    ev = event(dep("gpt"))
    ev.path = "a:openai/x#0 ✗timeout → gpt:openai/gpt-4o-mini#0 ✓"
    line = orjson.loads(journal_line(ev, 5))
    assert line[0] == JOURNAL_VERSION == 4
    assert journal_record(line) == spill_record(ev, 5)
    old = [3, *line[1:9], *line[10:]]  # a version-3 line: no path
    rec = journal_record(old)
    assert rec is not None and "path" not in rec["dims"] and rec["row"]["request_id"] == ev.request_id


def test_the_writer_interns_the_path_and_leaves_it_null_for_one_call(engine, tmp_path) -> None:
    w = _writer(engine, tmp_path)
    fell_back, plain = event(dep("gpt")), event(dep("gpt"))
    fell_back.path = "a:openai/x#0 ✗500 → gpt:openai/gpt-4o-mini#0 ✓"
    w.submit(fell_back)
    w.submit(plain)
    w.stop()
    with engine.connect() as c:
        got = dict(
            c.execute(
                text(
                    "SELECT r.request_id, d.value FROM ledger_requests r "
                    "LEFT JOIN ledger_dims d ON d.id = r.path_dim"
                )
            ).all()
        )
    assert got == {fell_back.request_id: fell_back.path, plain.request_id: None}


def test_attempt_path_lists_each_call_in_order() -> None:
    d1, d2 = dep("a"), dep("b")
    one = Attempt("a", deployment=d1, calls=1)
    assert one.path() is None
    served = Attempt("a", deployment=d2, calls=2, failed=[(d1.id, "timeout")])
    assert served.path() == f"{d1.id} ✗timeout → {d2.id} ✓"
    failed = Attempt("a", deployment=d2, calls=2, failed=[(d1.id, "timeout"), (d2.id, "503")])
    assert failed.path() == f"{d1.id} ✗timeout → {d2.id} ✗503"
