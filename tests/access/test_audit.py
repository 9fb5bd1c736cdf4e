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


def _forge_plain_chain(engine, key=None) -> None:
    """What an attacker with write access to the database does after deleting rows: recompute every hash
    (plain SHA-256, or HMAC under a key it guessed) and the head, so the chain links up again."""
    from sqlalchemy import select

    from ailab.access.audit import row_hash
    from ailab.access.schema import GENESIS, audit_head

    prev, n = GENESIS, 0
    with engine.begin() as conn:
        for r in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings().all():
            digest = row_hash(prev, r["ts_ms"], r["actor"], r["action"], r["target"], r["detail"], key)
            conn.execute(
                update(audit_log).where(audit_log.c.id == r["id"]).values(prev_hash=prev, hash=digest)
            )
            prev, n = digest, n + 1
        conn.execute(update(audit_head).values(last_hash=prev, count=n))


def _keyed_log(database_url, tmp_path):
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    return engine, AuditLog(engine, checkpoint=tmp_path / "audit.checkpoint")


def test_a_recomputed_chain_after_deleting_a_row_is_detected(database_url, tmp_path):
    engine, log = _keyed_log(database_url, tmp_path)
    for i in range(5):
        log.record("user:u1", "key.create", f"key_{i}")
    check = log.verify()
    assert check.ok and check.keyed and check.checkpoint
    middle = log.entries(limit=5)[::-1][2]
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == middle.id))
    for guess in (None, b"\0" * 32):  # plain SHA-256, or HMAC under a key that is not the lab's
        _forge_plain_chain(engine, guess)
        again = AuditLog(engine, checkpoint=tmp_path / "audit.checkpoint").verify()
        assert not again.ok, guess
    engine.dispose()


def test_truncating_the_tail_is_detected_by_the_checkpoint(database_url, tmp_path):
    from ailab.access.schema import audit_head

    engine, log = _keyed_log(database_url, tmp_path)
    for i in range(5):
        log.record("a", "x", str(i))
    rows = log.entries(limit=5)[::-1]
    with engine.begin() as conn:  # drop the two newest rows and move the head back: the chain is consistent
        conn.execute(delete(audit_log).where(audit_log.c.id >= rows[3].id))
        conn.execute(update(audit_head).values(last_hash=_hash_of(conn, rows[2].id), count=3))
    check = log.verify()
    assert not check.ok and "checkpoint" in check.reason
    # the checkpoint file cannot be edited to match either: it is MAC'd too
    cp = tmp_path / "audit.checkpoint"
    cp.write_text(cp.read_text().replace('"count": 5', '"count": 3'))
    assert "altered" in log.verify().reason
    engine.dispose()


def _hash_of(conn, row_id: int) -> str:
    from sqlalchemy import select

    return conn.execute(select(audit_log.c.hash).where(audit_log.c.id == row_id)).scalar_one()


def test_a_keyed_chain_reset_to_plain_is_detected(database_url, tmp_path):
    from ailab.access.schema import audit_head

    engine, log = _keyed_log(database_url, tmp_path)
    for i in range(3):
        log.record("a", "x", str(i))
    _forge_plain_chain(engine)
    with engine.begin() as conn:
        conn.execute(update(audit_head).values(keyed=False))
    check = AuditLog(engine, checkpoint=tmp_path / "audit.checkpoint").verify()
    assert not check.ok and "not keyed" in check.reason
    engine.dispose()


def test_a_legacy_plain_chain_is_keyed_once_at_first_use(database_url, tmp_path):
    from sqlalchemy import select

    from ailab.access.schema import audit_head

    engine, _ = _keyed_log(database_url, tmp_path)
    plain = AuditLog(engine)
    plain._keyed = True  # write as the code before access_0003 did: plain SHA-256, head not keyed
    plain._key = None
    plain.mac_key = lambda: None  # type: ignore[method-assign]
    for i in range(3):
        plain.record("a", "x", str(i))
    with engine.begin() as conn:
        conn.execute(update(audit_head).values(keyed=None))
        before = [r[0] for r in conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id))]
    log = AuditLog(engine, checkpoint=tmp_path / "audit.checkpoint")
    check = log.verify()
    assert check.ok and check.keyed and check.rows == 3
    with engine.connect() as conn:
        after = [r[0] for r in conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id))]
    assert after != before  # re-chained under the key
    log.record("a", "x", "3")
    assert log.verify().ok and log.verify().checkpoint
    engine.dispose()


def test_cli_verify_catches_a_recomputed_chain(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    for name in ("alice", "bob", "carol"):
        assert runner.invoke(app, ["users", "add", name, *args]).exit_code == 0
    assert runner.invoke(app, ["audit", "--verify", *args]).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'ailab.db'}")
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == 2))
    _forge_plain_chain(engine)
    engine.dispose()
    bad = runner.invoke(app, ["audit", "--verify", *args])
    assert bad.exit_code == 1 and "BROKEN" in bad.output
