"""Knowledge benchmarks (not tests): ingest of the PostgreSQL docs, retrieval at 100k chunks."""
