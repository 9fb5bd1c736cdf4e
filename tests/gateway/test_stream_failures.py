"""Streams that do not finish: an upstream cut (dropped connection, or a body that ends before any finish_reason
and [DONE]) and a client that hangs up mid-stream. Neither is a clean 200 in the ledger."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest
from sqlalchemy import select

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "one two three four five six"}]
HEADERS = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def gw(openai_upstream, make_gateway):
    return make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 2, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )


def rows(gw):
    gw.flush()
    r = schema.requests
    d = schema.dims
    with gw.app.state.engine.connect() as conn:
        errors = {i: v for i, v in conn.execute(select(d.c.id, d.c.value).where(d.c.kind == "error"))}
        out = conn.execute(select(r).order_by(r.c.id)).mappings().all()
    return [{**row, "error": errors.get(row["error_dim"])} for row in out]


def _stream(gw) -> str:
    body = {"model": "m", "messages": MSG, "stream": True}
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=HEADERS, timeout=30).text


@pytest.mark.parametrize("fault", [{"end_after": 3}, {"cut_after": 3}])
def test_upstream_cut_is_an_error_event_without_done_and_a_failed_row(gw, openai_upstream, fault) -> None:
    openai_upstream.up.fail_next(**fault)
    text = _stream(gw)
    events = [e for e in text.split("\n\n") if e]
    assert "[DONE]" not in text
    last = json.loads(events[-1][6:])
    assert last["error"]["code"] == "stream_interrupted" and last["error"]["type"] == "upstream_error"
    delivered = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert delivered  # text reached the client before the cut
    row = rows(gw)[-1]
    assert row["status"] == 502 and row["error"] == "stream_interrupted"
    assert row["completion_tokens"] > 0 and row["flags"] & schema.FLAG_ESTIMATED
    assert len(openai_upstream.up.requests("chat")) == 1  # no retry once bytes went out


def test_sdk_sees_the_cut_as_an_error(gw, openai_upstream) -> None:
    openai_upstream.up.fail_next(end_after=2)
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="m", messages=MSG, stream=True):
            got.append(chunk)
    assert got


def test_a_finished_stream_without_done_is_still_fine(gw, openai_upstream) -> None:
    # All events incl. finish_reason, then the body ends: some servers omit [DONE]; the answer is whole.
    openai_upstream.up.fail_next(end_after=9)
    text = _stream(gw)
    assert text.endswith("data: [DONE]\n\n")
    assert rows(gw)[-1]["status"] == 200


def _open_stream(gw, body: dict) -> socket.socket:
    port = int(gw.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    raw = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {MASTER}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    return sock


def _wait(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_client_disconnect_mid_stream_stops_the_upstream_and_is_ledgered_499(gw, openai_upstream) -> None:
    up = openai_upstream.up
    up.fail_next(event_delay=0.3)
    long = [{"role": "user", "content": " ".join(f"w{i}" for i in range(40))}]
    sock = _open_stream(gw, {"model": "m", "messages": long, "stream": True})
    received = b""
    while received.count(b"data: ") < 2:  # the first content has arrived
        received += sock.recv(65536)
    sock.close()
    _wait(lambda: up.streams_closed_early == 1, "the gateway to close the upstream stream")
    assert up.events_sent < 40  # the upstream was not read to the end
    _wait(lambda: bool(rows(gw)), "the ledger row")
    row = rows(gw)[-1]
    assert row["status"] == 499 and row["error"] == "client_disconnected"
    assert row["completion_tokens"] > 0 and row["flags"] & schema.FLAG_ESTIMATED
    assert [d.state.in_flight for d in gw.app.state.router.groups["m"]] == [0]
