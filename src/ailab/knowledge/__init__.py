"""Knowledge and RAG: collections, ingestion, hybrid search and answers with citations.

The door is `ailab.knowledge.service.KnowledgeService`; nothing heavy is imported here.
"""
