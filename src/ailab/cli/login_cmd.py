"""`ailab login`: sign in through the lab's OpenID provider with the device flow (RFC 8628, relayed by the
lab, which holds the client secret) and keep the short-lived lab key it issues, 0600, in the user's config
dir (`$XDG_CONFIG_HOME/ailab/credentials.json`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8765"


class LoginError(Exception):
    """The sign-in did not complete (the message says why)."""


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ailab" / "credentials.json"


def save_credentials(url: str, answer: dict[str, Any]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    known[url] = {k: answer[k] for k in ("key", "key_id", "expires_ms", "user")}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(known, f, indent=2)
    os.replace(tmp, path)
    return path


def device_login(
    url: str, show: Callable[[dict[str, Any]], None], sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Start the device flow at the lab, show the code, poll until the user approved it; the lab's answer."""
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/api/auth/oidc/device")
        if r.status_code != 200:
            raise LoginError(_message(r))
        start = r.json()
        show(start)
        interval = float(start.get("interval") or 5)
        deadline = time.monotonic() + float(start.get("expires_in") or 600)
        while time.monotonic() < deadline:
            sleep(interval)
            r = http.post("/api/auth/oidc/device/token", json={"device_code": start["device_code"]})
            if r.status_code == 200:
                answer: dict[str, Any] = r.json()
                return answer
            code = _code(r)
            if code == "slow_down":
                interval += 5
            elif code != "authorization_pending":
                raise LoginError(_message(r))
    raise LoginError("the code expired before it was approved; run `ailab login` again")


def _code(r: httpx.Response) -> str | None:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the lab answered {r.status_code}"


def login(
    url: Annotated[
        str | None, typer.Option(help="the lab's URL (default: $AILAB_URL or the local lab)")
    ] = None,
) -> None:
    """Sign in with the lab's single sign-on (device flow) and save a short-lived key for this user."""
    lab = (url or os.environ.get("AILAB_URL") or DEFAULT_URL).rstrip("/")

    def show(start: dict[str, Any]) -> None:
        where = start.get("verification_uri_complete") or start["verification_uri"]
        typer.echo(f"Open {where}\nand confirm the code {start['user_code']} (waiting…)")

    try:
        answer = device_login(lab, show)
    except (LoginError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    path = save_credentials(lab, answer)
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(answer["expires_ms"] / 1000))
    typer.echo(
        f"signed in as {answer['user']['username']} ({answer['user']['role']}); "
        f"a key valid until {until} is in {path}"
    )
