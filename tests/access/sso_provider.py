"""A real OpenID provider (npm `oidc-provider`, panva) on loopback, and a browser-free user for it.

`npm ci` runs once per checkout (node_modules is gitignored); the provider process is one per test, started
after the lab so that it knows the lab's callback URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

HERE = Path(__file__).parent / "oidc"
CLIENT_ID = "ailab-lab"
CLIENT_SECRET = "oidc-client-secret-SECRET-marker-77"
_install_lock = threading.Lock()


def ensure_installed() -> None:
    """`npm ci` once (make test-deps runs it too; this covers a bare pytest run)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the OpenID provider tests")
    with _install_lock:
        if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
            return
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE, check=True, timeout=600
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Provider:
    port: int
    proc: subprocess.Popen[str]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def account(self, login: str, **claims: object) -> None:
        httpx.post(f"{self.issuer}/_test/accounts/{login}", json=claims, timeout=5).raise_for_status()

    def tamper(self, mode: str) -> None:
        """The next token response carries a spoiled ID token: sig | aud | exp | none | replay."""
        httpx.post(f"{self.issuer}/_test/tamper", json={"mode": mode}, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_provider(port: int, redirect_uri: str) -> Provider:
    ensure_installed()
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "PORT": str(port),
        "REDIRECT_URI": redirect_uri,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
    }
    proc = subprocess.Popen(
        ["node", str(HERE / "provider.mjs")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until listening (or the process exits)
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"the OpenID provider did not start: {line!r}")
    return Provider(port, proc)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "id": a.get("id", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[a["name"]] = a.get("value", "")


def forms(html: str) -> list[dict[str, object]]:
    p = _Forms()
    p.feed(html)
    return p.forms


def sign_in_at_provider(
    browser: httpx.Client, start: httpx.Response, login: str, stop_at: str | None
) -> httpx.Response:
    """Walk the provider's pages like a person would: confirm a device code, fill the login form, confirm
    consent, until the next redirect leaves for `stop_at` (the lab; returned, not followed) or, with
    `stop_at` None (the device flow), a page without a form (the provider's "you are done")."""
    r = start
    for _ in range(12):
        if r.is_redirect:
            target = urljoin(str(r.url), r.headers["location"])
            if stop_at is not None and target.startswith(stop_at):
                return r
            r = browser.get(target)
            continue
        found = forms(r.text)
        if not found and stop_at is None:
            assert r.status_code == 200, r.text[:300]
            return r
        assert found, f"no form on the provider's page: {r.status_code} {r.text[:300]}"
        form = found[0]
        fields = dict(form["fields"])  # type: ignore[arg-type]
        if "login" in fields:
            fields.update(login=login, password="any")
        r = browser.post(urljoin(str(r.url), str(form["action"])), data=fields)
    raise AssertionError("the provider's interaction did not end")
