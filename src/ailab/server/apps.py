"""The running lab's apps, built by the composition root (the server) for the apps pillar: loaded once
per process from the config and the apps folder, with project
names resolved through the access pillar and retrieval through the knowledge service."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ailab.apps import AppService, load_apps

if TYPE_CHECKING:
    from ailab.server.state import LabState

log = logging.getLogger("ailab.apps")


class AppsConfigError(ValueError):
    """Apps that do not validate: the lab does not start with them (every problem is listed)."""


def build(state: LabState) -> AppService:
    apps = load_apps(state.loaded)
    if apps.problems:
        lines = "\n  ".join(str(p) for p in apps.problems)
        raise AppsConfigError(f"invalid apps (run `ailab apps validate`):\n  {lines}")
    if apps.apps:
        log.info("apps: %s", ", ".join(sorted(apps.apps)))

    def project_id(ident: str) -> str | None:
        from ailab.access import NotFound

        try:
            return state.access.identity.project(ident).id
        except NotFound:
            return None

    def knowledge():  # type: ignore[no-untyped-def]
        return state.knowledge_service()

    return AppService(apps, project_id, knowledge)


def of(state: LabState) -> AppService:
    service = getattr(state, "apps", None)
    if service is None:
        service = build(state)
        state.apps = service
    return service
