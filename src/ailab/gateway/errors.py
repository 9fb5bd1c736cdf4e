"""Client-facing errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import math
from typing import Any

from ailab.gateway.types import UpstreamError

# Quoting user input in messages lives in the shared leaf `ailab.text`; the gateway imports it from here.
from ailab.text import QUOTE_LIMIT as QUOTE_LIMIT
from ailab.text import clip as clip
from ailab.text import quote as quote

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "invalid_request_error",
    500: "server_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        type: str | None = None,  # default: from the status
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        self._type = type

    @property
    def type(self) -> str:
        return self._type or _TYPES.get(self.status, "api_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_param(param: str, message: str) -> GatewayError:
    return GatewayError(400, f"{param}: {message}", param=param, code="invalid_value")


def retry_after_header(seconds: float | None) -> dict[str, str]:
    if seconds is None or not math.isfinite(seconds):
        seconds = 1.0  # never overflow on a value that slipped past the caps
    return {"Retry-After": str(max(1, math.ceil(min(seconds, 86400.0))))}


def from_upstream(exc: UpstreamError) -> GatewayError:
    """Map a final upstream failure to what the client gets (the message is already redacted)."""
    if exc.kind == "timeout":
        return GatewayError(504, f"{exc.message}", code="upstream_timeout")
    if exc.status == 429:
        return GatewayError(
            429,
            exc.message,
            code=exc.code or "upstream_rate_limited",  # e.g. insufficient_quota keeps its meaning
            param=exc.param,
            type=exc.type,
            headers=retry_after_header(exc.retry_after),
        )
    if exc.status in (401, 403):
        # The upstream refused the gateway's credentials: the client's request is not at fault.
        return GatewayError(502, exc.message, code="upstream_auth_failed")
    if exc.status is not None and 400 <= exc.status < 500:
        # The client's request was refused: keep the upstream's code, param and type (its meaning).
        return GatewayError(
            exc.status if exc.status in _TYPES else 400,
            exc.message,
            code=exc.code or "upstream_rejected",
            param=exc.param,
            type=exc.type,
        )
    return GatewayError(502, exc.message, code="upstream_error")
