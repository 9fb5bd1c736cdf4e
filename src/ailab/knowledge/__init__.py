"""Knowledge and RAG: collections, ingestion, hybrid search and answers with citations.

The knowledge pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.knowledge.catalog import CATALOG_FILE, Collection, KnowledgeCatalog, is_postgres, open_catalog
    from ailab.knowledge.catalog_pg import WRITE_LOCK
    from ailab.knowledge.evaluation import EvalError, parse_questions
    from ailab.knowledge.finder import FindOptions
    from ailab.knowledge.gateway_client import GatewayClient, ModelCallError
    from ailab.knowledge.rag import ask, citations, source_label
    from ailab.knowledge.service import Hit, KnowledgeError, KnowledgeService, missing_collection
    from ailab.knowledge.stores import StoreError, VectorStore, open_store, store_names
    from ailab.knowledge.uploads import Incoming, incoming_dir, keep_uploads, spool

_WHERE = {
    "CATALOG_FILE": "ailab.knowledge.catalog",
    "Collection": "ailab.knowledge.catalog",
    "EvalError": "ailab.knowledge.evaluation",
    "FindOptions": "ailab.knowledge.finder",
    "GatewayClient": "ailab.knowledge.gateway_client",
    "Hit": "ailab.knowledge.service",
    "Incoming": "ailab.knowledge.uploads",
    "KnowledgeCatalog": "ailab.knowledge.catalog",
    "KnowledgeError": "ailab.knowledge.service",
    "KnowledgeService": "ailab.knowledge.service",
    "ModelCallError": "ailab.knowledge.gateway_client",
    "StoreError": "ailab.knowledge.stores",
    "VectorStore": "ailab.knowledge.stores",
    "WRITE_LOCK": "ailab.knowledge.catalog_pg",
    "ask": "ailab.knowledge.rag",
    "citations": "ailab.knowledge.rag",
    "incoming_dir": "ailab.knowledge.uploads",
    "is_postgres": "ailab.knowledge.catalog",
    "keep_uploads": "ailab.knowledge.uploads",
    "missing_collection": "ailab.knowledge.service",
    "open_catalog": "ailab.knowledge.catalog",
    "open_store": "ailab.knowledge.stores",
    "parse_questions": "ailab.knowledge.evaluation",
    "source_label": "ailab.knowledge.rag",
    "spool": "ailab.knowledge.uploads",
    "store_names": "ailab.knowledge.stores",
}

__all__ = [
    "CATALOG_FILE",
    "WRITE_LOCK",
    "Collection",
    "EvalError",
    "FindOptions",
    "GatewayClient",
    "Hit",
    "Incoming",
    "KnowledgeCatalog",
    "KnowledgeError",
    "KnowledgeService",
    "ModelCallError",
    "StoreError",
    "VectorStore",
    "ask",
    "citations",
    "evaluation",
    "incoming_dir",
    "is_postgres",
    "keep_uploads",
    "missing_collection",
    "open_catalog",
    "open_store",
    "parse_questions",
    "rag",
    "source_label",
    "spool",
    "store_names",
]


# Submodules in __all__ (`from ailab.knowledge import rag`) are imported by Python itself: __getattr__
# raises AttributeError for them and the import system falls back to the submodule.


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
