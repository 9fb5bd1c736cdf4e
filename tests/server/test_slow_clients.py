"""Slow clients against a real `ailab up`, over raw sockets: connections that do not finish their headers
(slowloris), that stall mid-body, or that idle between requests are closed by the server; a request that
completes is served. The assertion is the server's close (EOF on read), within a bounded wait."""

from __future__ import annotations

import socket

import pytest
import yaml

from tests.conftest import MASTER
from tests.labproc import run_lab
from tests.server.rawhttp import stop

WAIT = 30  # seconds a read may wait for the server's close (the timeouts are 2 s)


@pytest.fixture
def lab(tmp_path):
    cfg = {
        "ailab": {"discover_ollama": False, "header_timeout": 2, "body_timeout": 2, "keep_alive_timeout": 2}
    }
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, url = run_lab(path, tmp_path / "data")
    host, port = url.removeprefix("http://").split(":")
    try:
        yield host, int(port)
    finally:
        stop(proc)


def connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr, timeout=WAIT)
    return s


def closed_by_server(s: socket.socket) -> bool:
    """Read until the server closes (True) or the bounded wait ends (False); answers are read past."""
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_slowloris_connections_are_closed(lab):
    socks = [connect(lab) for _ in range(50)]
    for s in socks:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: lab\r\nX-Slow: 1\r\n")  # headers never end
    idle = [connect(lab) for _ in range(5)]  # nothing sent at all
    try:
        assert all(closed_by_server(s) for s in socks + idle)
    finally:
        for s in socks + idle:
            s.close()


def test_stalled_bodies_unfinished_and_idle_requests_are_closed(lab):
    s = connect(lab)
    body = b'{"username": "admin", "password": "x"}'
    head = f"POST /api/auth/login HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    s.sendall(head.encode() + body[:10])  # then silence
    assert closed_by_server(s)
    s.close()

    ok = connect(lab)
    try:
        auth = f"Authorization: Bearer {MASTER}\r\n"
        ok.sendall(f"GET /health/live HTTP/1.1\r\nHost: lab\r\n{auth}\r\n".encode())
        first = ok.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        ok.sendall(b"GET /health/live HTTP/1.1\r\nHost: lab\r\n")  # a second request, headers unfinished
        assert closed_by_server(ok)
    finally:
        ok.close()

    kept = connect(lab)
    try:
        kept.sendall(b"GET /health/live HTTP/1.1\r\nHost: lab\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_server(kept)  # idle after the answer: closed after keep_alive_timeout
    finally:
        kept.close()
