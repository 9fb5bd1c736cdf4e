"""An app call from a chat body, for the gateway (ailab.apps.serve wires it into the request cycle):
the body rewritten into the app's (its model group, prompt, parameters, sources), errors in OpenAI's
shape, and the in-process calls it makes while preparing (retrieval's embeddings) ledgered with it."""

from __future__ import annotations

from typing import Any

from ailab.access import Principal
from ailab.apps.models import ALIAS_PREFIX
from ailab.apps.prompt import AppRequestError
from ailab.apps.service import AppCall, AppService
from ailab.gateway import GatewayError
from ailab.ledger import CURRENT_APP


async def resolve(
    service: AppService | None, principal: Principal, body: dict[str, Any], route_name: str | None
) -> AppCall:
    """The app call for this body (its rewritten body in `.body`); a GatewayError in OpenAI's shape."""
    if route_name is not None:
        body["model"] = ALIAS_PREFIX + route_name  # the route names the app; a model field is ignored
    name = str(body["model"])[len(ALIAS_PREFIX) :]
    if service is None:
        message = f"The app `{name[:100]}` does not exist."
        raise GatewayError(404, message, param="model", code="app_not_found")
    token = CURRENT_APP.set(name)
    try:
        return await service.prepare(principal, name, body)
    except AppRequestError as exc:
        raise GatewayError(exc.status, str(exc), param=exc.param, code=exc.code) from None
    finally:
        CURRENT_APP.reset(token)
