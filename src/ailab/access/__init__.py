"""Identity and access: principals, permissions (allow/deny with a reason), users, projects, API keys,
sessions and the audit log. The door other pillars import from; `schema` (the tables) is part of it."""

from ailab.access import schema
from ailab.access.audit import AuditLog
from ailab.access.auth import Authenticator, ensure_master_key
from ailab.access.cache import user_principal
from ailab.access.grants import GrantDenied, KeyGrant, bound_key, check_models_served, check_outranks
from ailab.access.passwords import generate_password
from ailab.access.policy import Decision, UsageScope, decide, holds, usage_scope
from ailab.access.principal import MASTER, Principal
from ailab.access.proxies import proxy_options
from ailab.access.records import ApiKey, Conflict, Limits, NotFound
from ailab.access.schema import MIGRATIONS
from ailab.access.service import AccessService
from ailab.access.sessions import COOKIE, CSRF_HEADER, LoginFailed, LoginThrottled, Session, session_hash

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "MASTER",
    "MIGRATIONS",
    "AccessService",
    "ApiKey",
    "AuditLog",
    "Authenticator",
    "Conflict",
    "Decision",
    "GrantDenied",
    "KeyGrant",
    "Limits",
    "LoginFailed",
    "LoginThrottled",
    "NotFound",
    "Principal",
    "Session",
    "UsageScope",
    "bound_key",
    "check_models_served",
    "check_outranks",
    "decide",
    "ensure_master_key",
    "generate_password",
    "holds",
    "proxy_options",
    "schema",
    "session_hash",
    "usage_scope",
    "user_principal",
]
