"""Vector stores behind one small interface; built-ins register the way third-party ones would."""

from __future__ import annotations

from ailab.knowledge.stores.base import StoreError, StoreFactory, VectorStore, open_store, store_names

__all__ = ["StoreError", "StoreFactory", "VectorStore", "open_store", "store_names"]
