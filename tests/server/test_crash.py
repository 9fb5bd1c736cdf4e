"""`ailab up` killed with SIGKILL under load (streaming and not, several clients at once): after a restart
the ledger holds a row for every request whose whole answer a client received (the usage journal)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import text

from ailab.db import make_engine
from ailab.ledger.journal import journal_dir
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.labproc import run_lab

CLIENTS = 12
KILL_AFTER = 300  # answered requests before the kill


class Load:
    """Clients sending requests until the lab dies; they keep the request id of every complete answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(30)

    def _client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {MASTER}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=20) as client:
            for i in range(100_000):
                try:
                    got = self._one(client, stream=(n + i) % 2 == 0, text_=f"c{n} r{i}")
                except httpx.HTTPError:
                    return  # the lab is gone
                if got is not None:
                    with self.lock:
                        self.answered.append(got)

    @staticmethod
    def _one(client: httpx.Client, stream: bool, text_: str) -> str | None:
        body = {"model": "m", "messages": [{"role": "user", "content": text_}], "stream": stream}
        if stream:
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                data = r.read()  # raises if the connection breaks before the end
                complete = data.rstrip().endswith(b"data: [DONE]") and b'"error"' not in data
        else:
            r = client.post("/v1/chat/completions", json=body)
            complete = r.json().get("choices") is not None
        return r.headers["x-request-id"] if r.status_code == 200 and complete else None


def _wait_for(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _ledger_ids(data_dir: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{data_dir / 'ailab.db'}")
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT request_id FROM ledger_requests WHERE status = 200")).scalars())
    engine.dispose()
    return ids


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_under_load_loses_no_answered_request(openai_upstream, tmp_path, workers):
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    model("m", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
                ],
                "router_settings": {"num_retries": 0},
                "ailab": {"discover_ollama": False},
            }
        )
    )
    data = tmp_path / "data"
    proc, url = run_lab(cfg, data, "--workers", str(workers), new_session=True)
    load = Load(url)
    load.start()
    try:
        _wait_for(lambda: len(load.answered) >= KILL_AFTER)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and every worker, no chance to flush anything
        proc.wait(timeout=30)
        load.join()
    answered = list(load.answered)
    assert len(answered) >= KILL_AFTER

    proc, _ = run_lab(cfg, data, "--workers", str(workers))  # replays the dead processes' journals
    _stop(proc)
    ledger = _ledger_ids(data)
    missing = set(answered) - set(ledger)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests are not in the ledger"
    assert len(ledger) == len(set(ledger))
    assert not list(journal_dir(data).glob("journal-*.jsonl"))  # a clean stop leaves no journal behind


def test_two_workers_import_spill_files_once_and_start(openai_upstream, tmp_path):
    """Both workers of `ailab up --workers 2` start on a data dir holding spill files: the rows go in once."""
    from ailab.ledger.writer import spill_record
    from tests.ledger.test_writer import event

    data = tmp_path / "data"
    data.mkdir()
    ids = []
    for n in range(4):
        events = [event(None, p=1) for _ in range(50)]
        ids += [ev.request_id for ev in events]
        lines = b"".join(orjson.dumps(spill_record(ev, None)) + b"\n" for ev in events)
        (data / f"ledger-spill-{n}.jsonl").write_bytes(lines)
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"model_list": [], "ailab": {"discover_ollama": False}}))
    proc, _ = run_lab(cfg, data, "--workers", "2")
    _stop(proc)
    engine = make_engine(f"sqlite:///{data / 'ailab.db'}")
    with engine.connect() as conn:
        got = list(conn.execute(text("SELECT request_id FROM ledger_requests")).scalars())
    engine.dispose()
    assert sorted(got) == sorted(ids)
    assert not list(data.glob("ledger-spill-*"))
