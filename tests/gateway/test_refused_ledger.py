"""Every request is a ledger row, refused ones included (401, 404, 400, 413, 429), with its status and error
type, and `ailab usage --by error` shows them."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from ailab.cli import app
from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "hi"}]


def test_refused_requests_are_ledgered_and_reported_by_error(openai_upstream, make_gateway) -> None:
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "general_settings": {"max_request_size_mb": 0.01},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    user = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"}).json()
    limited = admin.post("/api/keys", json={"user_id": user["id"], "name": "slow", "rpm": 1}).json()
    url = f"{gw.base_url}/chat/completions"

    def post(key: str | None, body: dict | bytes) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if isinstance(body, bytes):
            return httpx.post(url, content=body, headers=headers).status_code
        return httpx.post(url, json=body, headers=headers).status_code

    ok = {"model": "m", "messages": MSG}
    assert post(None, ok) == 401
    assert post("sk-unknown-key", ok) == 401
    assert post(MASTER, {"model": "nope" * 50_000, "messages": MSG}) in (404, 413)
    assert post(MASTER, {"model": "nope", "messages": MSG}) == 404
    assert post(MASTER, {**ok, "temperature": 9}) == 400
    assert post(MASTER, {**ok, "tool_choice": {"type": "function", "function": {"name": "f"}}}) == 200
    assert post(MASTER, b"{not json") == 400
    assert post(MASTER, {"model": "m", "messages": [{"role": "user", "content": "x" * 20_000}]}) == 413
    limited_statuses = [post(limited["key"], ok) for _ in range(3)]  # 3: a minute may roll over once
    assert limited_statuses[0] == 200 and limited_statuses[-1] == 429
    gw.flush()

    r, d = schema.requests, schema.dims
    with gw.app.state.engine.connect() as conn:
        names = dict(conn.execute(select(d.c.id, d.c.value)).all())
        rows = conn.execute(select(r).order_by(r.c.id)).mappings().all()
    got = [(row["status"], names.get(row["error_dim"]), names.get(row["key_dim"])) for row in rows]
    assert got[:2] == [(401, "invalid_api_key", None)] * 2
    assert (404, "model_not_found", "master") in got and (400, "invalid_value", "master") in got
    assert (400, "invalid_json", "master") in got and (413, "body_too_large", "master") in got
    assert got[-1] == (429, "rpm_exceeded", limited["id"])
    assert [row["status"] for row in rows].count(200) == 1 + limited_statuses.count(200)
    assert all(names.get(row["group_dim"]) in (None, "m") for row in rows)  # no made-up names interned
    assert all(row["cost_pusd"] == 0 for row in rows if row["status"] >= 400)

    args = ["--config", str(gw.config_path), "--data-dir", str(gw.data_dir)]
    out = CliRunner().invoke(app, ["usage", *args, "--by", "error", "--format", "json"])
    assert out.exit_code == 0, out.output
    by_error = {row["error"]: row for row in json.loads(out.stdout)}
    assert by_error["invalid_api_key"]["requests"] == by_error["invalid_api_key"]["errors"] == 2
    assert (
        by_error["rpm_exceeded"]["errors"] == limited_statuses.count(429)
        and by_error["model_not_found"]["errors"] >= 1
    )
    assert by_error["-"]["errors"] == 0 and by_error["-"]["requests"] == 1 + limited_statuses.count(200)
