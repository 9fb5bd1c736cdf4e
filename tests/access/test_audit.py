"""The audit chain verifies; editing or removing a row is detected and named (API, CLI), on both databases."""

from __future__ import annotations

import threading

from sqlalchemy import delete, update
from typer.testing import CliRunner

from ailab.access.audit import AuditLog
from ailab.access.schema import MIGRATIONS, audit_log
from ailab.cli import app
from ailab.db import make_engine, migrate


def _log(database_url):
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    return engine, AuditLog(engine)


def test_chain_verifies_and_names_an_edited_row(database_url):
    engine, log = _log(database_url)
    for i in range(5):
        log.record("cli:test", "key.create", f"key_{i}", n=i)
    assert log.verify().ok and log.verify().rows == 5
    third = log.entries(limit=5)[::-1][2]
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == third.id).values(actor="someone-else"))
    check = log.verify()
    assert not check.ok and check.broken_id == third.id and "edited" in check.reason
    engine.dispose()


def test_removing_rows_is_detected(database_url):
    engine, log = _log(database_url)
    for i in range(4):
        log.record("a", "x", str(i))
    rows = log.entries(limit=4)[::-1]
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == rows[1].id))
    assert log.verify().broken_id == rows[2].id
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id >= rows[2].id))
    assert not log.verify().ok  # the newest rows removed: the head no longer matches
    engine.dispose()


def test_concurrent_writers_keep_one_chain(database_url):
    engine, log = _log(database_url)
    threads = [
        threading.Thread(target=lambda i=i: [log.record("t", "a", f"{i}-{j}") for j in range(10)])
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = log.verify()
    assert check.ok and check.rows == 40
    engine.dispose()


def test_cli_verify_fails_and_names_the_row(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["users", "add", "alice", *args]).exit_code == 0
    assert runner.invoke(app, ["projects", "add", "alpha", *args]).exit_code == 0
    ok = runner.invoke(app, ["audit", "--verify", *args])
    assert ok.exit_code == 0 and "OK (2 rows)" in ok.stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'ailab.db'}")
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 1).values(target="mallory"))
    engine.dispose()
    bad = runner.invoke(app, ["audit", "--verify", *args])
    assert bad.exit_code == 1 and "row 1" in bad.output
    listing = runner.invoke(app, ["audit", "--format", "json", *args])
    assert "user.create" in listing.stdout and "password" not in listing.stdout
