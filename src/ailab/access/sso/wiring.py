"""SSO's parts for one lab, built from `access.sso` once the access pillar has started."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ailab.access.sso.service import SsoService
from ailab.access.sso.tunnel import TunnelIdentity
from ailab.config import SECRET_REF

if TYPE_CHECKING:
    from ailab.server.state import LabState

log = logging.getLogger(__name__)


@dataclass
class Sso:
    oidc: SsoService | None
    tunnel: TunnelIdentity | None


def start_sso(state: LabState) -> Sso:
    settings = state.loaded.config.access.sso

    def resolve(ref: str | None) -> str | None:
        if ref is None or not ref.startswith(SECRET_REF):
            return ref
        return state.secret_store("sso").get(ref.removeprefix(SECRET_REF))

    oidc = SsoService(state.access, settings.oidc, resolve) if settings.oidc is not None else None
    tunnel = TunnelIdentity(state.access, settings)
    if oidc is not None:
        state.tasks.append(asyncio.create_task(_check_sessions(oidc)))
    return Sso(oidc, tunnel if tunnel.enabled else None)


async def _check_sessions(service: SsoService) -> None:
    """Ask the provider about each session every `refresh_interval_seconds` (ends the disabled ones)."""
    interval = min(service.settings.refresh_interval_seconds, 60.0)
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(service.check_sessions)
        except Exception as exc:  # a database hiccup must not stop the checks for good
            log.warning("sso: session check failed: %s", exc)
