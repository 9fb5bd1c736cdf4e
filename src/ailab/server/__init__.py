"""The ASGI server: app factory, lifespan, health and metrics."""

from ailab.server.app import LabApp, app_from_env, create_app

__all__ = ["LabApp", "app_from_env", "create_app"]
