"""Prometheus metrics, one registry per app (no globals).

Labels carry config names only (model groups, providers, deployment ids, status codes), never secrets or
free user text: unknown model names are not labels.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ailab_requests", "Gateway requests", ["model", "provider", "status", "endpoint"], registry=r
        )
        self.request_latency = Histogram(
            "ailab_request_duration_seconds",
            "Request latency at the gateway",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "ailab_upstream_duration_seconds",
            "Latency of upstream calls",
            ["model", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ailab_time_to_first_token_seconds",
            "Time to first streamed token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("ailab_tokens", "Tokens by direction", ["model", "direction"], registry=r)
        self.cost = Counter("ailab_cost_usd", "Cost in USD", ["model", "provider"], registry=r)
        self.unpriced = Counter(
            "ailab_unpriced_requests", "Requests with no known price", ["model"], registry=r
        )
        self.retries = Counter("ailab_retries", "Upstream retries", ["model"], registry=r)
        self.fallbacks = Counter("ailab_fallbacks", "Fallbacks to another model group", ["model"], registry=r)
        self.cooldowns = Counter("ailab_cooldowns", "Deployments put in cooldown", ["deployment"], registry=r)
        self.upstream_errors = Counter(
            "ailab_upstream_errors", "Failed upstream calls", ["deployment", "kind"], registry=r
        )
        self.limit_rejections = Counter(
            "ailab_limit_rejections",
            "Requests refused by a budget or rate limit",
            ["scope", "limit"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ailab_in_flight_requests", "Requests in flight", registry=r, multiprocess_mode="livesum"
        )
        self.ledger_depth = Gauge(
            "ailab_ledger_queue_depth",
            "Usage events waiting for the ledger writer",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_written = Counter("ailab_ledger_written_rows", "Ledger rows written", registry=r)
        self.ledger_dropped = Counter(
            "ailab_ledger_dropped_rows", "Ledger rows lost (must stay 0)", registry=r
        )
        self.ledger_spilled = Counter("ailab_ledger_spilled_rows", "Ledger rows spilled to disk", registry=r)
        self.deployment_up = Gauge(
            "ailab_deployment_healthy",
            "1 if the deployment is not cooling down",
            ["deployment"],
            registry=r,
            multiprocess_mode="liveall",
        )

        self.knowledge = KnowledgeMetrics(r)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


class KnowledgeMetrics:
    """Ingestion and retrieval (labels: collection names, which are config-like identifiers)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.documents = Counter(
            "ailab_knowledge_documents_ingested", "Documents ingested", ["collection"], registry=r
        )
        self.chunks = Counter(
            "ailab_knowledge_chunks_ingested", "Chunks ingested", ["collection"], registry=r
        )
        self.errors = Counter(
            "ailab_knowledge_ingest_errors", "Documents that failed to ingest", ["collection"], registry=r
        )
        self.embed_latency = Histogram(
            "ailab_knowledge_embed_duration_seconds",
            "Latency of one embedding batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.search_latency = Histogram(
            "ailab_knowledge_search_duration_seconds",
            "Latency of a search (embedding the query excluded)",
            ["store"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
