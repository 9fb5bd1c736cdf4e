"""/health/ready reports the ledger degraded, and why, while its writes fail; ok again once they succeed."""

from __future__ import annotations

import time

import httpx
import openai
from sqlalchemy import text

from ailab.ledger import totals
from tests.conftest import MASTER, UPSTREAM_KEY, model

FAIL = (
    "CREATE TRIGGER ledger_full BEFORE INSERT ON ledger_requests "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def _ready_until(url: str, cond, timeout: float = 30) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{url}/health/ready", timeout=5)
        body = r.json()
        if cond(body):
            assert r.status_code == 200  # still serving: degraded, not unavailable
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_ready_reports_a_failing_ledger_and_its_recovery(openai_upstream, make_gateway):
    gw = make_gateway(
        {"model_list": [model("m", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)]}
    )
    assert httpx.get(f"{gw.url}/health/ready").json()["ledger"] == "ok"
    engine = gw.app.state.engine
    with engine.begin() as conn:
        conn.execute(text(FAIL))  # a real database error on every ledger insert, as a full disk gives
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    body = _ready_until(gw.url, lambda b: b["ledger"] != "ok")
    assert body["status"] == "degraded"
    assert body["ledger"].startswith("degraded: database write failed")
    assert "database or disk is full" in body["ledger"] and "INSERT" not in body["ledger"]
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_full"))
    body = _ready_until(gw.url, lambda b: b["ledger"] == "ok")
    assert body["status"] == "ok"
    gw.flush()
    assert totals(engine).requests == 1  # the row waited and went in
