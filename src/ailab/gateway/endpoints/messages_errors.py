"""Errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}, "request_id"}`, the
status kept from the gateway's own error (so limits, scopes and upstream failures mean the same on every
endpoint) and the type chosen the way Anthropic pairs types with statuses."""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import GatewayError, from_upstream
from ailab.gateway.types import UpstreamError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    if status in TYPES:
        return TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(err: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(err.status), "message": err.message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def from_upstream_messages(exc: UpstreamError) -> GatewayError:
    """The gateway's mapping of an upstream failure (errors.from_upstream), except that an overloaded
    upstream stays Anthropic's 529 `overloaded_error`, which Anthropic's clients back off from and retry."""
    err = from_upstream(exc)
    if exc.status in (503, 529) and exc.kind == "http":
        return GatewayError(529, err.message, code="upstream_overloaded", headers=err.headers)
    return err
