"""A migrated ledger database, on SQLite and on a real PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import pytest

from ailab.db import make_engine, migrate
from ailab.ledger import MIGRATIONS


@pytest.fixture
def engine(database_url):
    e = make_engine(database_url)
    migrate(e, MIGRATIONS)
    yield e
    e.dispose()
