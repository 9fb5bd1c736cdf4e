"""GET /v1/models: the model groups the key may use (no upstream call, no ledger row)."""

from __future__ import annotations

from typing import Any, ClassVar

from ailab.gateway.asgi import Receive, Scope, Send, send_json
from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Route


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
        return {"id": name, "object": "model", "created": self.api.created, "owned_by": "ailab"}
