"""Batch inserts for SQLite as multi-row statements.

An `executemany` steps once per row, and sqlite3 releases and retakes the GIL around every step: a writer
thread then takes the GIL back from the event loop once per row (a forced switch after the switch interval).
A multi-row INSERT is one step, and less CPU a row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

# Bound parameters one statement may hold: 32766 from SQLite 3.32 on, 999 before.
SQLITE_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def insert_many(conn: Connection, insert: str, marks: str, rows: Sequence[Sequence[Any]], most: int) -> None:
    """`rows` through `insert` ("INSERT INTO t (cols) VALUES ") as statements of at most `most` rows, each
    row's placeholders `marks` ("(?, ?, …)"), within the parameter limit."""
    if not rows:
        return
    per = max(1, min(most, SQLITE_PARAMS // len(rows[0])))
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        conn.exec_driver_sql(insert + ", ".join([marks] * len(part)), tuple(v for row in part for v in row))
