"""Sessions end when credentials change: a new password (API or `ailab users passwd`) ends the user's other
sessions, and disabling then re-enabling a user brings none back."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from ailab.cli import app
from tests.access.conftest import Lab

PASSWORD = "correct-horse-battery"


def _login(lab: Lab, username: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=lab.gw.url, timeout=10)
    r = c.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def test_a_password_change_ends_the_other_sessions(lab):
    here, csrf = _login(lab, "root")
    elsewhere, _ = _login(lab, "root")
    victim, _ = _login(lab, "usr")
    uid = lab.users["root"]
    r = here.patch(
        f"/api/users/{uid}", json={"password": "a-brand-new-password"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    assert here.get("/api/me").status_code == 200  # the session that changed it stays
    assert elsewhere.get("/api/me").status_code == 401
    assert victim.get("/api/me").status_code == 200  # other users are untouched
    r = here.patch(
        f"/api/users/{lab.users['usr']}",
        json={"password": "reset-by-admin-1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200 and victim.get("/api/me").status_code == 401


def test_cli_passwd_ends_sessions(lab):
    session, _ = _login(lab, "ana")
    args = ["--config", str(lab.gw.config_path), "--data-dir", str(lab.gw.data_dir)]
    r = CliRunner().invoke(app, ["users", "passwd", "ana", *args], input="another-password-1\n")
    assert r.exit_code == 0, r.output
    assert session.get("/api/me").status_code == 401
    _login(lab, "ana", "another-password-1")


def test_disable_and_enable_does_not_revive_sessions(lab):
    session, _ = _login(lab, "usr")
    with lab.client("root") as admin:
        assert admin.patch(f"/api/users/{lab.users['usr']}", json={"disabled": True}).status_code == 200
        assert session.get("/api/me").status_code == 401
        assert admin.patch(f"/api/users/{lab.users['usr']}", json={"disabled": False}).status_code == 200
    assert session.get("/api/me").status_code == 401
    _login(lab, "usr")  # a fresh login works again
