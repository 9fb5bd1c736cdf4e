"""`python -m ailab.stack.healthcheck URL`: exit 0 when URL answers 2xx, else 1 (container health checks).

The image is a slim Python base without curl or wget; this uses only the standard library.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8765/health/live"


def check(url: str, timeout: float = 3.0) -> bool:
    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        return False  # a health check looks at its own container, nothing else
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only, above)
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else DEFAULT_URL
    ok = check(url)
    if not ok:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
