"""A lab started in process (no HTTP server) for the CLI and tests: the same router, ledger and access
control as `ailab up`, so `ailab ingest` / `search` / `ask` calls are routed and ledgered like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ailab.config import LoadedConfig
from ailab.server.state import LabState

if TYPE_CHECKING:
    from ailab.knowledge import KnowledgeService


@asynccontextmanager
async def open_lab(loaded: LoadedConfig) -> AsyncIterator[tuple[LabState, KnowledgeService]]:
    state = LabState(loaded)
    await state.start()
    try:
        yield state, state.knowledge_service()
    finally:
        if state.ledger is not None:
            state.ledger.flush()
        await state.stop()
