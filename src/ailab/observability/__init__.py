"""Observability: Prometheus metrics and health."""

from ailab.observability.metrics import Metrics

__all__ = ["Metrics"]
