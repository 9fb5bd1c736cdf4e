"""At start: rows that never reached the database go in now, each exactly once.

Two sources: spill files (rows the writer could not write, kept on disk) and journal segments of processes
that died (`ailab.ledger.journal`). With several gateway workers every one of them starts a writer, so the
import runs under a lock in the data dir: one worker imports while the others wait, then find nothing left.
A journal segment still locked belongs to a live process and is left alone. Rows whose request id the
ledger already holds are skipped, which makes a replay after a crash (or an interrupted import) idempotent.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select

from ailab.ledger import schema
from ailab.ledger.journal import SEGMENT_GLOB, journal_dir, segment_lines, try_lock
from ailab.ledger.records import journal_record
from ailab.ledger.rows import COLUMNS, insert_rows

log = logging.getLogger(__name__)

SPILL_GLOB = "ledger-spill-*.jsonl"
IMPORT_LOCK = "import.lock"
Intern = Callable[[str, str | None], int | None]
Transaction = Callable[[], AbstractContextManager[Connection]]
Row = tuple[Any, ...]


def recover(data_dir: Path, intern: Intern, transaction: Transaction) -> int:
    """Import spill files and dead processes' journal segments; return the rows added."""
    jdir = journal_dir(data_dir)
    jdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    added = 0
    with _locked(jdir / IMPORT_LOCK):
        for path in sorted(data_dir.glob(SPILL_GLOB)):
            # A spill file is written whole (then renamed): a line that does not parse is damage, and the
            # start stops on it rather than drop rows (`ailab doctor` names the file).
            records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
            added += _import(records, intern, transaction, path.name)
            path.unlink()
        for path in sorted(jdir.glob(SEGMENT_GLOB)):
            fd = try_lock(path)
            if fd is None:
                continue  # a live process is writing it
            try:
                added += _import(journal_records(path), intern, transaction, path.name)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
    return added


def journal_records(path: Path) -> list[dict[str, Any]]:
    """The records of a segment; a line that is not one (cut short by the machine's crash) is skipped."""
    out = []
    for n, line in enumerate(segment_lines(path.read_bytes()), 1):
        try:
            rec = journal_record(orjson.loads(line))
        except (orjson.JSONDecodeError, TypeError):
            rec = None
        if rec is None:
            log.warning("ledger journal %s: line %d is not a usage record; skipped", path.name, n)
            continue
        out.append(rec)
    return out


def _import(records: list[dict[str, Any]], intern: Intern, transaction: Transaction, name: str) -> int:
    rows: dict[str, Row] = {}
    for rec in records:  # dimensions are interned before the transaction (each in its own)
        row = record_row(rec, intern)
        rows.setdefault(row[0], row)
    if not rows:
        return 0
    with transaction() as conn:
        known = existing_ids(conn, list(rows))
        fresh = [r for rid, r in rows.items() if rid not in known]
        insert_rows(conn, fresh)
    if fresh or name.startswith("ledger-spill-"):
        log.info(
            "re-imported %d ledger rows from %s (%d already in the ledger)", len(fresh), name, len(known)
        )
    return len(fresh)


def record_row(rec: dict[str, Any], intern: Intern) -> Row:
    row = {"cache_write_1h_tokens": 0, **rec["row"]}  # recorded before the column existed: none
    for kind, value in rec["dims"].items():
        row[f"{kind}_dim"] = intern(kind, value)
    return tuple(row.get(c) for c in COLUMNS)


def existing_ids(conn: Connection, ids: Sequence[str], chunk: int = 500) -> set[str]:
    col = schema.requests.c.request_id
    found: set[str] = set()
    for i in range(0, len(ids), chunk):
        found.update(conn.execute(select(col).where(col.in_(ids[i : i + chunk]))).scalars())
    return found


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker importing: wait for it, then find nothing left
        yield
    finally:
        os.close(fd)
