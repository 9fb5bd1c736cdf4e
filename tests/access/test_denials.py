"""Denied requests do not flood the audit log: one row per principal + permission per window, with a count,
and the first denial is written at once."""

from __future__ import annotations

from ailab.access.audit import AuditLog
from ailab.access.denials import DenialGate
from ailab.access.schema import MIGRATIONS
from ailab.db import make_engine, migrate


def _counts(entries) -> int:
    return sum(e.detail.get("count", 1) for e in entries)


def test_fifty_denials_are_one_row_with_a_count(lab):
    with lab.client("usr") as c:
        for _ in range(50):
            assert c.get("/api/users").status_code == 403
        assert c.get("/api/audit").status_code == 403
    rows = lab.access.audit.entries(action="access.denied")
    assert sorted(e.target for e in rows) == ["audit.read", "users.manage"]  # the first of each, at once
    first = next(e for e in rows if e.target == "users.manage")
    assert first.actor.startswith("key:") and first.detail["count"] == 1
    lab.access.denials.flush()  # what the lab does at shutdown
    rows = lab.access.audit.entries(action="access.denied")
    assert len(rows) == 3 and _counts(rows) == 51
    assert lab.access.audit.verify().ok


def test_a_new_window_writes_one_row_carrying_the_repeats(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine, MIGRATIONS)
    audit = AuditLog(engine)
    now = [1000.0]
    gate = DenialGate(audit, window_s=60, clock=lambda: now[0])
    for _ in range(10):
        gate.denied("key:k1", "access.denied", "users.manage")
    gate.denied("key:k2", "access.denied", "users.manage")  # another principal: its own row
    assert [e.detail["count"] for e in audit.entries()] == [1, 1]
    now[0] += 61
    gate.denied("key:k1", "access.denied", "users.manage")
    newest = audit.entries(limit=1)[0]
    assert newest.actor == "key:k1" and newest.detail["count"] == 10  # 9 repeats and this one
    assert newest.detail["first_ms"] <= newest.detail["last_ms"]
    assert _counts(audit.entries()) == 12
    engine.dispose()
