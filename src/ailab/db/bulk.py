"""Batch inserts for SQLite as multi-row statements.

An `executemany` steps once per row, and sqlite3 releases and retakes the GIL around every step: a writer
thread then takes the GIL back from the event loop once per row (a forced switch after the switch interval).
A multi-row INSERT is one step, and less CPU a row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
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
    # The driver's own cursor, in the connection's transaction: SQLAlchemy's execution context (events,
    # result object) costs more than the statement's own Python work.
    cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(rows), per):
            part = rows[start : start + per]
            sql = insert + ", ".join([marks] * len(part))
            cursor.execute(sql, tuple(chain.from_iterable(part)))
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn, sql, exc) from exc
    finally:
        cursor.close()


def driver_error(conn: Connection, sql: str, exc: Exception) -> Exception:
    """A driver error as SQLAlchemy's DBAPIError (IntegrityError …), as `exec_driver_sql` raises it: the
    callers' handling of database errors holds for statements run on the driver's own cursor too."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error)
