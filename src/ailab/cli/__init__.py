"""The `ailab` command line. Modules are imported lazily so `ailab --help` and `ailab version` stay fast."""

from ailab.cli.main import app, main

__all__ = ["app", "main"]
