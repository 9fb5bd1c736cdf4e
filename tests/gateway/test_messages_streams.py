"""/v1/messages streams that do not finish: an upstream cut mid-stream and a client that hangs up. Neither is
a clean 200 in the ledger; the upstream is not read to the end after a hang-up."""

from __future__ import annotations

import json
import socket

import anthropic
import httpx
import pytest

from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.gateway.test_stream_failures import _wait, rows
from tests.upstreams import anthropic_server


@pytest.fixture
def anthropic_upstream():
    r = start_upstream("anthropic", anthropic_server.make_app)
    yield r
    r.server.stop()


@pytest.fixture(params=["openai", "anthropic"])
def setup(request, openai_upstream, anthropic_upstream, make_gateway):
    if request.param == "openai":
        up, entry = openai_upstream, model("m", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    else:
        up = anthropic_upstream
        entry = model("m", "anthropic/claude-sonnet-4-5", anthropic_upstream.url, api_key=UPSTREAM_KEY)
    gw = make_gateway({"model_list": [entry], "router_settings": {"num_retries": 0, "cooldown_time": 0}})
    return gw, up.up


def _open(gw, body: dict) -> socket.socket:
    port = int(gw.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    raw = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {MASTER}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    return sock


def test_client_disconnect_is_ledgered_499_and_stops_the_upstream(setup) -> None:
    gw, up = setup
    up.fail_next(event_delay=0.3)
    words = " ".join(f"w{i}" for i in range(40))
    sock = _open(
        gw,
        {"model": "m", "max_tokens": 500, "messages": [{"role": "user", "content": words}], "stream": True},
    )
    received = b""
    while b"content_block_delta" not in received:  # the first content has arrived
        received += sock.recv(65536)
    sock.close()
    _wait(lambda: up.streams_closed_early == 1, "the gateway to close the upstream stream")
    _wait(lambda: bool(rows(gw)), "the ledger row")
    row = rows(gw)[-1]
    assert row["status"] == 499 and row["error"] == "client_disconnected"
    assert row["completion_tokens"] > 0
    assert [d.state.in_flight for d in gw.app.state.router.groups["m"]] == [0]


def test_an_upstream_cut_is_an_error_event_and_a_failed_row(setup) -> None:
    gw, up = setup
    up.fail_next(cut_after=4)
    body = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "a b c d e f"}],
        "stream": True,
    }
    text = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": MASTER}, timeout=30).text
    assert "event: error" in text and "event: message_stop" not in text
    row = rows(gw)[-1]
    assert row["status"] == 502 and row["error"] == "stream_interrupted"
    with pytest.raises(anthropic.APIStatusError):
        up.fail_next(cut_after=4)
        with anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0).messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "x y"}]
        ) as s:
            s.get_final_message()
