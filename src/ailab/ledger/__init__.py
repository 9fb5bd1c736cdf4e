"""Usage & cost ledger: events from the hot path, a batched writer, prices, and reports."""

from ailab.ledger.events import UsageEvent
from ailab.ledger.pricing import PriceBook
from ailab.ledger.queries import UsageRow, parse_since, totals, usage_report
from ailab.ledger.schema import MIGRATIONS
from ailab.ledger.writer import LedgerWriter

__all__ = [
    "MIGRATIONS",
    "LedgerWriter",
    "PriceBook",
    "UsageEvent",
    "UsageRow",
    "parse_since",
    "totals",
    "usage_report",
]
