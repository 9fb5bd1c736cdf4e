"""The web console at /console: server-rendered pages (Jinja2) with a little JavaScript (htmx, uPlot),
every asset vendored into the package (static/vendor/VERSIONS.md)."""

from ailab.console.app import build_console, docs_routes

__all__ = ["build_console", "docs_routes"]
