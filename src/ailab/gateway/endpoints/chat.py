"""POST /v1/chat/completions and POST /v1/embeddings: the providers' native calls."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Endpoint
from ailab.gateway.providers.base import Provider
from ailab.gateway.validate import validate_chat, validate_embeddings
from ailab.ledger.schema import ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS


class ChatCompletions(Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/chat/completions"),)
    endpoint_id = ENDPOINT_CHAT

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        validate_chat(body)
        ctx.body = body
        ctx.stream = bool(body.get("stream"))
        model: str = body["model"]
        return model


class Embeddings(Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/embeddings"),)
    endpoint_id = ENDPOINT_EMBEDDINGS

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        validate_embeddings(body)
        ctx.body = body
        model: str = body["model"]
        return model

    def estimate(self, ctx: RequestContext) -> tuple[int, int]:
        budgeter = self.cycle.budgeter
        return budgeter.estimate(ctx.body, False) if budgeter is not None else (0, 0)

    def call(self, provider: Provider, ctx: RequestContext) -> Awaitable[dict[str, Any]]:
        return provider.embed(ctx.body)
