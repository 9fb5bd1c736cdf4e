"""What one `/v1/responses` request carries through the cycle (in `ctx.scratch["responses"]`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ailab.gateway.responses.request import new_response_id


@dataclass(slots=True)
class ResponsesState:
    body: dict[str, Any]  # the client's request, checked
    items: list[dict[str, Any]]  # its input, normalised
    history: list[dict[str, Any]] = field(default_factory=list)  # from previous_response_id
    response_id: str = field(default_factory=new_response_id)  # time-ordered: see there
    native: bool = False  # the deployment that answered speaks the Responses API itself
    final: dict[str, Any] | None = None  # the finished Response, once there is one
    final_json: bytes | None = None  # `final` as encoded for the answer: the store writes these bytes

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False  # OpenAI's default: stored

    @property
    def conversation(self) -> list[dict[str, Any]]:
        return [*self.history, *self.items]

    def fix_native(self, response: dict[str, Any]) -> dict[str, Any]:
        """An upstream's Response as the client asked for it: the lab holds the state (the upstream was
        asked with `store: false` and the expanded conversation)."""
        response["store"] = self.store
        response["previous_response_id"] = self.body.get("previous_response_id")
        usage = response.get("usage")
        if isinstance(usage, dict):  # details the schema requires, which not every upstream sends
            usage["input_tokens_details"] = {
                "cached_tokens": 0,
                "cache_write_tokens": 0,
                **(usage.get("input_tokens_details") or {}),
            }
            usage["output_tokens_details"] = {
                "reasoning_tokens": 0,
                **(usage.get("output_tokens_details") or {}),
            }
        return response
