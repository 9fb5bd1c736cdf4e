"""The gateway pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI
    from ailab.gateway.asgi import Receive, Scope, Send, send_error
    from ailab.gateway.cycle import RequestContext, usage_of
    from ailab.gateway.deployments import (
        apply_aliases,
        build_deployments,
        build_providers,
        ollama_deployments,
    )
    from ailab.gateway.endpoints.chat import ChatCompletions
    from ailab.gateway.endpoints.rerank import check_can_rerank, rerank_estimate, upstream_rerank
    from ailab.gateway.errors import GatewayError, clip, from_upstream
    from ailab.gateway.limits import Budgeter
    from ailab.gateway.openapi import merge as openapi_merge
    from ailab.gateway.providers.base import Provider
    from ailab.gateway.providers.ollama import list_models as list_ollama_models
    from ailab.gateway.providers.openai_compat import streamed_text
    from ailab.gateway.providers.registry import ProviderRegistry, default_registry
    from ailab.gateway.responses.endpoint import install as install_responses
    from ailab.gateway.responses.store import ResponseStore
    from ailab.gateway.router import NoDeploymentAvailable, Router
    from ailab.gateway.streaming import Seen, StreamShape, interrupted
    from ailab.gateway.types import Deployment, RawEvents, UpstreamError, Usage

_WHERE = {
    "Budgeter": "ailab.gateway.limits",
    "ChatCompletions": "ailab.gateway.endpoints.chat",
    "Deployment": "ailab.gateway.types",
    "GatewayAPI": "ailab.gateway.api",
    "GatewayError": "ailab.gateway.errors",
    "NoDeploymentAvailable": "ailab.gateway.router",
    "Provider": "ailab.gateway.providers.base",
    "ProviderRegistry": "ailab.gateway.providers.registry",
    "RawEvents": "ailab.gateway.types",
    "Receive": "ailab.gateway.asgi",
    "RequestContext": "ailab.gateway.cycle",
    "ResponseStore": "ailab.gateway.responses.store",
    "Router": "ailab.gateway.router",
    "Scope": "ailab.gateway.asgi",
    "Seen": "ailab.gateway.streaming",
    "Send": "ailab.gateway.asgi",
    "StreamShape": "ailab.gateway.streaming",
    "UpstreamError": "ailab.gateway.types",
    "Usage": "ailab.gateway.types",
    "apply_aliases": "ailab.gateway.deployments",
    "build_deployments": "ailab.gateway.deployments",
    "build_providers": "ailab.gateway.deployments",
    "check_can_rerank": "ailab.gateway.endpoints.rerank",
    "clip": "ailab.gateway.errors",
    "default_registry": "ailab.gateway.providers.registry",
    "from_upstream": "ailab.gateway.errors",
    "install_responses": "ailab.gateway.responses.endpoint:install",
    "interrupted": "ailab.gateway.streaming",
    "list_ollama_models": "ailab.gateway.providers.ollama:list_models",
    "ollama_deployments": "ailab.gateway.deployments",
    "openapi_merge": "ailab.gateway.openapi:merge",
    "rerank_estimate": "ailab.gateway.endpoints.rerank",
    "send_error": "ailab.gateway.asgi",
    "streamed_text": "ailab.gateway.providers.openai_compat",
    "upstream_rerank": "ailab.gateway.endpoints.rerank",
    "usage_of": "ailab.gateway.cycle",
}

__all__ = [
    "Budgeter",
    "ChatCompletions",
    "Deployment",
    "GatewayAPI",
    "GatewayError",
    "NoDeploymentAvailable",
    "Provider",
    "ProviderRegistry",
    "RawEvents",
    "Receive",
    "RequestContext",
    "ResponseStore",
    "Router",
    "Scope",
    "Seen",
    "Send",
    "StreamShape",
    "UpstreamError",
    "Usage",
    "apply_aliases",
    "build_deployments",
    "build_providers",
    "check_can_rerank",
    "clip",
    "default_registry",
    "from_upstream",
    "install_responses",
    "interrupted",
    "list_ollama_models",
    "ollama_deployments",
    "openapi_merge",
    "rerank_estimate",
    "send_error",
    "streamed_text",
    "upstream_rerank",
    "usage_of",
]


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
