"""Which peers may tell us the client's address and scheme: only the configured reverse proxies.

uvicorn's default believes X-Forwarded-For from 127.0.0.1, so anything on the machine (or a local proxy that
passes the header through) could rotate it to escape the per-client login throttle and forge the audit actor.
The lab passes `ailab.trusted_proxies` instead (none by default: forwarded headers are ignored).
"""

from __future__ import annotations

from ailab.config import ServerSettings


def proxy_options(settings: ServerSettings) -> dict[str, object]:
    """uvicorn options: forwarded headers honoured only from `trusted_proxies`."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(settings.trusted_proxies)}
