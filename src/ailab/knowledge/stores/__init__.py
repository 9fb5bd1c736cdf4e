"""Vector stores behind one small interface; built-ins register the way third-party ones would."""

from __future__ import annotations

from ailab.knowledge.stores.base import STORES, StoreError, VectorStore, open_store

__all__ = ["STORES", "StoreError", "VectorStore", "open_store"]
