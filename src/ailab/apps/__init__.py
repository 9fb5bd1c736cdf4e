"""Apps as code: a model group, a system prompt template, parameters, knowledge and tools, owned by a
project; served as `app:NAME` and on `/v1/apps/NAME/chat/completions`, exported to Dify (docs/apps.md)."""

from ailab.apps.loader import AppSet, Problem, apps_dir, cross_check, load_apps, load_files
from ailab.apps.models import ALIAS_PREFIX, AppSpec
from ailab.apps.prompt import AppRequestError
from ailab.apps.service import AppCall, AppService

__all__ = [
    "ALIAS_PREFIX",
    "AppCall",
    "AppRequestError",
    "AppService",
    "AppSet",
    "AppSpec",
    "Problem",
    "apps_dir",
    "cross_check",
    "load_apps",
    "load_files",
]
