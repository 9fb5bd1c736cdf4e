"""The usage event: what the hot path hands to the ledger (cheap to build; priced later, off the hot path)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from ailab.types import DeploymentRef, Usage

# The app (ailab.apps) whose call is being prepared in this task: in-process calls it makes (retrieval's
# embeddings) are ledgered with it too. Unset for everything else.
CURRENT_APP: ContextVar[str | None] = ContextVar("ailab_current_app", default=None)


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    ts: float  # wall clock, seconds
    endpoint: int  # schema.ENDPOINT_*
    group: str | None  # None: refused before a model group was known
    deployment: DeploymentRef | None  # the gateway's Deployment
    key_id: str | None
    user_id: str | None
    project_id: str | None
    usage: Usage
    latency_s: float
    ttft_s: float | None
    status: int
    error_type: str | None
    stream: bool
    retries: int = 0
    priced: bool = False  # True when the hot path already priced it (budgets); cost_pusd is then final
    cost_pusd: int | None = None
    # The serving deployment's busy time shared to this request (what cost_per_hour and watts bill);
    # None: the whole latency (events not made by the router).
    busy_s: float | None = None
    app: str | None = None  # the app (ailab.apps) the call was made for; None: a plain model call
    path: str | None = None  # the fallback path (router.Attempt.path) when more than one call was made

    @property
    def billed_s(self) -> float:
        return self.latency_s if self.busy_s is None else self.busy_s
