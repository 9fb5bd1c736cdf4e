"""Apps as code: a model group, a system prompt template, parameters, knowledge and tools, owned by a
project; served as `app:NAME` and on `/v1/apps/NAME/chat/completions`, exported to Dify (docs/apps.md).

The apps pillar's door: what other pillars may import from it, and only from here
(tests/test_imports.py). Names load on first use, so importing one piece never imports the whole pillar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ailab.doors import load

if TYPE_CHECKING:
    from ailab.apps.dify import PLUGIN_IDENTIFIER, dump, export_app
    from ailab.apps.dify_provision import ProvisionError, Settings, provision
    from ailab.apps.loader import AppSet, Problem, apps_dir, cross_check, inlined, load_apps, load_files
    from ailab.apps.models import ALIAS_PREFIX, AppSpec
    from ailab.apps.prompt import AppRequestError
    from ailab.apps.serve import install
    from ailab.apps.service import AppCall, AppService

_WHERE = {
    "ALIAS_PREFIX": "ailab.apps.models",
    "AppCall": "ailab.apps.service",
    "AppRequestError": "ailab.apps.prompt",
    "AppService": "ailab.apps.service",
    "AppSet": "ailab.apps.loader",
    "AppSpec": "ailab.apps.models",
    "PLUGIN_IDENTIFIER": "ailab.apps.dify",
    "Problem": "ailab.apps.loader",
    "ProvisionError": "ailab.apps.dify_provision",
    "Settings": "ailab.apps.dify_provision",
    "apps_dir": "ailab.apps.loader",
    "cross_check": "ailab.apps.loader",
    "dump": "ailab.apps.dify",
    "export_app": "ailab.apps.dify",
    "inlined": "ailab.apps.loader",
    "install": "ailab.apps.serve",
    "load_apps": "ailab.apps.loader",
    "load_files": "ailab.apps.loader",
    "provision": "ailab.apps.dify_provision",
}

__all__ = [
    "ALIAS_PREFIX",
    "PLUGIN_IDENTIFIER",
    "AppCall",
    "AppRequestError",
    "AppService",
    "AppSet",
    "AppSpec",
    "Problem",
    "ProvisionError",
    "Settings",
    "apps_dir",
    "cross_check",
    "dump",
    "export_app",
    "inlined",
    "install",
    "load_apps",
    "load_files",
    "provision",
]


def __getattr__(name: str) -> Any:
    return load(globals(), _WHERE, name)
