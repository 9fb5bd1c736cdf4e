"""GET /v1/models: the model groups the key may use (no upstream call, no ledger row)."""

from __future__ import annotations

from typing import Any, ClassVar

from ailab.gateway.asgi import Receive, Scope, Send, send_json
from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Route
from ailab.gateway.errors import GatewayError


class ListModels(Route):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("GET", "/v1/models"),)

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        assert ctx.principal is not None
        data = [self.model(name) for name in self.cycle.permitted(ctx.principal)]
        for lister in self.api.model_listers:
            data.extend(lister(ctx.principal))
        await send_json(send, 200, {"object": "list", "data": data}, ctx.response_headers())

    async def refuse(self, send: Send, err: Any, ctx: RequestContext) -> None:
        await self.send_error(send, err, ctx)  # listing models is not a model call: no ledger row

    def model(self, name: str) -> dict[str, Any]:
        return model_object(self.api.created, name)


class RetrieveModel(ListModels):
    """GET /v1/models/{id}: OpenAI's model object, or its 404 model_not_found for a model that is not served
    and for one the key may not use alike (ids may hold slashes: `ollama/llama3`)."""

    routes: ClassVar[tuple[tuple[str, str], ...]] = (("GET", "/v1/models/{model:path}"),)

    async def handle(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        assert ctx.principal is not None
        name = ctx.params.get("model", "")
        try:
            self.cycle.check_model(ctx.principal, name)
        except GatewayError as err:
            for lister in self.api.model_listers:  # a pillar's own names (apps) are models too
                found = next((m for m in lister(ctx.principal) if m.get("id") == name), None)
                if found is not None:
                    await send_json(send, 200, found, ctx.response_headers())
                    return
            await self.send_error(send, err, ctx)
            return
        await send_json(send, 200, self.model(name), ctx.response_headers())


def model_object(created: int, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "ailab"}
