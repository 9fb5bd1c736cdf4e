"""Observability: Prometheus metrics and health."""

from ailab.observability.metrics import KnowledgeMetrics, Metrics

__all__ = ["KnowledgeMetrics", "Metrics"]
