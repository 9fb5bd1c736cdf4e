"""Raw-socket HTTP for tests the httpx client cannot express (a body that outruns the server's answer,
a client that never finishes its headers), and the memory of a lab process read from /proc."""

from __future__ import annotations

import select
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.labproc import run_lab


def memory_kb(pid: int, field: str = "VmHWM") -> int:
    """VmHWM (the peak resident set so far) or VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def lab_with_fake_embeddings(tmp_path: Path, upstream_url: str, **knowledge: Any) -> tuple[Any, str]:
    """`ailab up` as a process whose knowledge embeds through the fake upstream (no model in memory)."""
    config = {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{upstream_url}/v1", api_key=UPSTREAM_KEY),
            model(
                "embed",
                "openai/text-embedding-3-small",
                f"{upstream_url}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"mode": "embedding"},
            ),
        ],
        "ailab": {"discover_ollama": False},
        "knowledge": {"embedding_model": "embed", "chat_model": "gpt", **knowledge},
    }
    path = tmp_path / "ailab.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_lab(path, tmp_path / "data")


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without an answer
    sent: int  # body bytes the server let the client send
    raw: bytes


def send_chunked(
    url: str,
    path: str,
    total: int,
    headers: dict[str, str] | None = None,
    chunk: int = 256 * 1024,
    prefix: bytes = b"",
) -> Answer:
    """POST `total` body bytes with Transfer-Encoding: chunked (no Content-Length), reading any answer the
    server gives while the body is still being sent."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in {"Authorization": f"Bearer {MASTER}", **(headers or {})}.items()]
    sock = socket.create_connection((host, int(port)), timeout=30)
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if prefix:
            sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
        piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
        while sent < total and not _readable(sock):
            try:
                sock.sendall(piece)
            except OSError:  # the server answered and closed: read what it said
                break
            sent += chunk
        else:
            if sent >= total:
                sock.sendall(b"0\r\n\r\n")
        raw = _read_all(sock)
    finally:
        sock.close()
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None
    return Answer(status, sent, raw)


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while data := sock.recv(65536):
            out += data
            if b"\r\n\r\n" in out and _complete(out):
                break
    except OSError:
        pass
    return out


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
