"""The usage journal: one line per event, replayed once after a process died, removed once committed."""

from __future__ import annotations

import threading

import orjson
from sqlalchemy import text

from ailab.db import make_engine, migrate
from ailab.ledger import MIGRATIONS, LedgerWriter, PriceBook, schema, totals
from ailab.ledger.journal import journal_dir
from ailab.ledger.records import journal_line, journal_record, spill_record
from ailab.ledger.recovery import recover
from tests.ledger.test_writer import dep, event


def _writer(engine, data, **kw) -> LedgerWriter:
    return LedgerWriter(engine, PriceBook(), data, flush_interval=0.01, **kw)


def _die(w: LedgerWriter) -> None:
    """What the kernel does for a killed process: its lock goes, its journal stays (nothing was written)."""
    seg = w.journal.detach()
    seg.release()


def _ids(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT request_id FROM ledger_requests")).scalars())


def test_a_journal_line_is_the_spill_record():
    d = dep("j", input_cost_per_token=1e-7, output_cost_per_token=4e-7)
    for ev in (event(d), event(None, status=502, error="upstream_error")):
        ev.stream, ev.ttft_s = True, 0.25
        assert journal_record(orjson.loads(journal_line(ev, 1234))) == spill_record(ev, 1234)
    assert journal_line(event(d), None).endswith(b"]\n")


def test_a_dead_process_journal_is_replayed_once(engine, tmp_path):
    data = tmp_path / "data"
    dead = _writer(engine, data)  # never started: its rows never reach the database
    events = [event(dep("j"), p=10 + i) for i in range(50)]
    for ev in events:
        dead.submit(ev)
    assert len(list(journal_dir(data).glob("journal-*.jsonl"))) == 1
    live = _writer(engine, data)
    live.start()  # the dead writer's segment is still locked: not touched
    assert totals(engine).requests == 0
    _die(dead)
    assert recover(data, live._dim, live._transaction) == 50
    assert recover(data, live._dim, live._transaction) == 0  # and not twice
    live.stop()
    assert sorted(_ids(engine)) == sorted(ev.request_id for ev in events)
    assert totals(engine).prompt_tokens == sum(10 + i for i in range(50))  # the rollup counts them once
    assert not list(journal_dir(data).glob("journal-*.jsonl"))


def test_replay_skips_rows_already_committed(engine, tmp_path):
    data = tmp_path / "data"
    w = _writer(engine, data)
    w.start()
    events = [event(dep("j")) for _ in range(20)]
    for ev in events:
        w.submit(ev)
    w.flush()  # committed, but the process dies before its segment is retired
    _die(w)
    w2 = _writer(engine, data)
    w2.start()
    w2.stop()
    w.stop()
    assert sorted(_ids(engine)) == sorted(ev.request_id for ev in events)
    assert totals(engine).requests == 20


def test_segments_are_removed_once_their_rows_are_committed(engine, tmp_path):
    data = tmp_path / "data"
    w = _writer(engine, data)
    w.journal.segment_bytes = 2000  # a few lines a segment
    w.start()
    for _ in range(200):
        w.submit(event(dep("j")))
    w.flush()
    assert len(list(journal_dir(data).glob("journal-*.jsonl"))) <= 2  # the current one (and one retiring)
    w.stop()
    assert not list(journal_dir(data).glob("journal-*.jsonl"))
    assert totals(engine).requests == 200


def test_journal_off_writes_no_file(engine, tmp_path):
    w = _writer(engine, tmp_path / "data", journal=False)
    w.start()
    w.submit(event(dep("j")))
    w.stop()
    assert not list(journal_dir(tmp_path / "data").glob("journal-*.jsonl"))
    assert totals(engine).requests == 1


def test_two_workers_starting_import_spill_files_once(database_url, tmp_path):
    """As two gateway workers of one lab: both start at once on a data dir holding spill files."""
    data = tmp_path / "data"
    data.mkdir()
    for n in range(3):
        lines = [orjson.dumps(spill_record(event(dep("s"), p=1), 5)) for _ in range(100)]
        (data / f"ledger-spill-{n}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    migrate(make_engine(database_url), MIGRATIONS)
    engines = [make_engine(database_url) for _ in range(2)]
    writers = [_writer(e, data) for e in engines]
    go = threading.Barrier(2)
    errors: list[BaseException] = []

    def start(w: LedgerWriter) -> None:
        go.wait()
        try:
            w.start()
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.stop()
    assert errors == []
    assert totals(engines[0]).requests == 300
    assert not list(data.glob("ledger-spill-*"))


def test_duplicate_request_ids_left_by_an_old_version_are_removed(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, MIGRATIONS[:2])
    with engine.begin() as conn:  # today's writer also keeps the narrow totals (ledger_0006)
        schema.totals.create(conn)
    w = _writer(engine, tmp_path / "d", journal=False)
    w.start()
    twice = event(dep("j"), p=7)
    for ev in (twice, event(dep("j"), p=3)):
        w.submit(ev)
    w.stop()
    with engine.begin() as conn:  # what a double spill import did: the same row inserted again
        conn.exec_driver_sql(
            "INSERT INTO ledger_requests (id, request_id, ts_ms, endpoint, key_dim, "
            "user_dim, project_dim, group_dim, deployment_dim, provider_dim, prompt_tokens, "
            "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, "
            "latency_ms, ttft_ms, status, error_dim, cost_pusd, flags, retries) "
            "SELECT NULL, request_id, ts_ms, endpoint, key_dim, "
            "user_dim, project_dim, group_dim, deployment_dim, provider_dim, prompt_tokens, "
            "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, "
            "latency_ms, ttft_ms, status, error_dim, cost_pusd, flags, retries "
            "FROM ledger_requests WHERE prompt_tokens = 7"
        )
        conn.exec_driver_sql(
            "UPDATE ledger_daily SET requests = requests + 1, prompt_tokens = prompt_tokens + 7"
        )
        conn.exec_driver_sql("DROP TABLE ledger_totals")  # the old version had none
        assert conn.exec_driver_sql("SELECT SUM(requests) FROM ledger_daily").scalar() == 3
    assert migrate(engine, MIGRATIONS)[0] == "ledger_0003_unique_request_id"
    assert totals(engine).requests == 2 and totals(engine).prompt_tokens == 10  # the rollup is rebuilt
    assert len(_ids(engine)) == len(set(_ids(engine))) == 2


def test_a_batch_holding_a_known_request_id_writes_the_rest(engine, tmp_path):
    w = _writer(engine, tmp_path / "data")
    w.start()
    first = event(dep("j"))
    w.submit(first)
    w.flush()
    again = event(dep("j"), request_id=first.request_id)
    others = [event(dep("j")) for _ in range(5)]
    for ev in [*others[:2], again, *others[2:]]:
        w.submit(ev)
    w.stop()
    assert w.spilled == 0 and w.dropped == 0
    assert sorted(_ids(engine)) == sorted([first.request_id, *(ev.request_id for ev in others)])
