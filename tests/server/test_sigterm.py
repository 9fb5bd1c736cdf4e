"""`ailab up` as a real process: a SIGTERM during a burst of requests loses no ledger row."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import yaml

from ailab.db import make_engine
from ailab.ledger import totals
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.labproc import run_lab


def start_lab(tmp_path: Path, config: dict, *args: str) -> tuple[subprocess.Popen, str]:
    cfg_path = tmp_path / "ailab.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    return run_lab(cfg_path, tmp_path / "data", *args)


def test_sigterm_during_burst_loses_no_row(openai_upstream, database_url, tmp_path):
    config = {
        "model_list": [model("m", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
        "router_settings": {"num_retries": 0},
        "general_settings": {"database_url": database_url},
    }
    proc, url = start_lab(tmp_path, config)
    n = 40
    openai_upstream.up.fail_next(n, delay=0.4)  # slow answers keep requests in flight at the signal
    results: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": f"burst {i}"}], "stream": i % 2 == 0}
        try:
            r = httpx.post(
                f"{url}/v1/chat/completions",
                json=body,
                timeout=30,
                headers={"Authorization": f"Bearer {MASTER}"},
            )
            status = r.status_code
        except httpx.HTTPError:
            status = -1  # refused after shutdown began: never reached the gateway
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(openai_upstream.up.requests("chat")) < n // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM is the clean path.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM), proc.stdout.read().decode() if proc.stdout else ""
    engine = make_engine(database_url)
    ledger = totals(engine)
    engine.dispose()
    served = results.count(200)
    upstream_calls = len(openai_upstream.up.requests("chat"))
    assert served >= n // 2
    assert ledger.requests == upstream_calls == served  # every request that got in is in the ledger
    assert ledger.errors == 0


def test_two_workers_share_one_ledger_and_stop_cleanly(openai_upstream, tmp_path):
    config = {
        "model_list": [model("m", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)]
    }
    proc, url = start_lab(tmp_path, config, "--workers", "2")
    headers = {"Authorization": f"Bearer {MASTER}"}
    for i in range(20):
        body = {"model": "m", "messages": [{"role": "user", "content": f"w {i}"}], "stream": i % 2 == 1}
        assert (
            httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10).status_code
            == 200
        )
    metrics = httpx.get(f"{url}/metrics").text
    assert 'ailab_requests_total{endpoint="chat",model="m",provider="openai",status="200"} 20.0' in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'ailab.db'}")
    assert totals(engine).requests == 20
    engine.dispose()
