"""Usage & cost ledger: events from the hot path, a batched writer, prices, and reports.

The door other pillars import from; `schema` (the tables, endpoint codes and flags) is part of it.
"""

from ailab.ledger import schema
from ailab.ledger.events import CURRENT_APP, UsageEvent
from ailab.ledger.journal import JOURNAL_DIR, SEGMENT_GLOB, journal_dir, try_lock
from ailab.ledger.pricing import PriceBook
from ailab.ledger.queries import (
    BY_CHOICES,
    GROUPS,
    UsageRow,
    parse_since,
    spend_by,
    totals,
    usage_report,
)
from ailab.ledger.schema import (
    ENDPOINT_CHAT,
    ENDPOINT_COMPLETIONS,
    ENDPOINT_EMBEDDINGS,
    ENDPOINT_MESSAGES,
    ENDPOINT_RERANK,
    ENDPOINT_RESPONSES,
    MIGRATIONS,
)
from ailab.ledger.series import usage_series
from ailab.ledger.writer import LedgerWriter

__all__ = [
    "BY_CHOICES",
    "CURRENT_APP",
    "ENDPOINT_CHAT",
    "ENDPOINT_COMPLETIONS",
    "ENDPOINT_EMBEDDINGS",
    "ENDPOINT_MESSAGES",
    "ENDPOINT_RERANK",
    "ENDPOINT_RESPONSES",
    "GROUPS",
    "JOURNAL_DIR",
    "MIGRATIONS",
    "SEGMENT_GLOB",
    "LedgerWriter",
    "PriceBook",
    "UsageEvent",
    "UsageRow",
    "journal_dir",
    "parse_since",
    "schema",
    "spend_by",
    "totals",
    "try_lock",
    "usage_report",
    "usage_series",
]
