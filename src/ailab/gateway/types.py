"""Types shared by the router and the provider adapters (the ledger's part is in `ailab.types`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ailab.config import ModelInfo
from ailab.types import Usage

__all__ = [
    "DEFAULT_REQUEST_S",
    "RETRYABLE_STATUS",
    "BusyClock",
    "Deployment",
    "DeploymentState",
    "RawEvents",
    "StreamItem",
    "UpstreamError",
    "Usage",  # defined in the shared leaf ailab.types; the gateway's modules import it from here
]

RETRYABLE_STATUS = frozenset({408, 409, 429})


class RawEvents:
    """Upstream SSE events forwarded byte for byte: `wire` is ready to send ("data: …\\n\\n" …), `payloads`
    the events' JSON, parsed only if the stream needs an estimate (no usage arrived, or it was cut).
    `more`: more items follow from the same network read (no waiting), so the relay may send them with this
    one. A `wire` of None is made from the payloads when first asked for: a shape that re-encodes the
    events (Responses, Messages) never asks."""

    __slots__ = ("_wire", "more", "payloads")

    def __init__(self, wire: bytes | None, payloads: list[bytes], more: bool = False) -> None:
        self._wire = wire
        self.payloads = payloads
        self.more = more

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = b"".join([b"data: %s\n\n" % p for p in self.payloads])
        return self._wire


StreamItem = dict[str, Any] | RawEvents  # what a provider's chat_stream yields


class UpstreamError(Exception):
    """A failed upstream call. `kind` is http, timeout, connection or protocol."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "http",
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        # The upstream's own error fields (OpenAI shape), passed on to the client for a 4xx.
        self.code = code
        self.param = param
        self.type = type

    @property
    def retryable(self) -> bool:
        if self.kind in ("timeout", "connection"):
            return True
        return self.status is not None and (self.status in RETRYABLE_STATUS or self.status >= 500)


# Request time assumed before a deployment has served any request (for budget estimates of time-priced ones).
DEFAULT_REQUEST_S = 60.0


class BusyClock:
    """A deployment's busy time, shared among the requests in flight on it: each request is billed
    ∫ dt / in_flight(t) over its time there, so the shares of all requests add up to the deployment's busy
    wall time. O(1) per start/stop event: `share` is that integral since the clock began, and a request's
    share is its value at stop minus its value at start."""

    __slots__ = ("busy_s", "ewma_s", "in_flight", "last", "share")

    def __init__(self) -> None:
        self.in_flight = 0
        self.share = 0.0  # ∫ dt / in_flight over busy time, seconds
        self.busy_s = 0.0  # busy wall time (at least one request in flight), seconds
        self.last = 0.0
        self.ewma_s = 0.0  # a request's wall time on the deployment, moving average; 0: none yet

    def _advance(self, now: float) -> None:
        if self.in_flight:
            dt = now - self.last
            self.share += dt / self.in_flight
            self.busy_s += dt
        self.last = now

    def start(self) -> tuple[float, float]:
        """A request starts on the deployment; the token goes back to `stop`."""
        now = time.perf_counter()
        self._advance(now)
        self.in_flight += 1
        return (self.share, now)

    def stop(self, token: tuple[float, float]) -> float:
        """The request left the deployment: its share of the busy time, in seconds."""
        self._advance(time.perf_counter())
        self.in_flight -= 1
        return self.share - token[0]

    def observe(self, wall_s: float) -> None:
        """A request served here took `wall_s` seconds, start to end (streams: to the last chunk)."""
        self.ewma_s = wall_s if self.ewma_s == 0 else 0.8 * self.ewma_s + 0.2 * wall_s

    def expected_s(self) -> float:
        """What a request is expected to take here, as an upper bound of its share (for estimates)."""
        return self.ewma_s or DEFAULT_REQUEST_S


@dataclass(eq=False, slots=True)
class DeploymentState:
    """Live routing state, mutated only on the event loop."""

    in_flight: int = 0
    consecutive_fails: int = 0
    cooldown_until: float = 0.0
    latency_ewma: float = 0.0
    minute: int = 0
    minute_tokens: int = 0
    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    busy: BusyClock = field(default_factory=BusyClock)


@dataclass(eq=False, slots=True)
class Deployment:
    """One upstream model behind a model group (LiteLLM's model_list entry)."""

    id: str
    group: str
    provider: str  # the plugin that speaks the wire format, e.g. "openai", "anthropic"
    provider_label: str  # what the user wrote, e.g. "groq"; used in the ledger and for prices
    price_id: str | None  # the price library's provider id, e.g. "google" for gemini
    model: str
    api_base: str | None
    api_key: (
        str | None
    )  # the live value; for `secret/NAME` it is filled (and re-filled on rotation) by the refresher
    api_version: str | None = None
    api_key_ref: str | None = None  # NAME of a `secret/NAME` reference in the config
    timeout: float = 600.0
    stream_timeout: float | None = None
    max_retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    mode: str = "chat"
    headers: dict[str, str] = field(default_factory=dict)
    info: ModelInfo = field(default_factory=ModelInfo)
    state: DeploymentState = field(default_factory=DeploymentState)
