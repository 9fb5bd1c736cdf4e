"""Soak: steady load through ailab (2 workers) for N seconds, streaming and not, with upstream faults mixed in
(5xx that retries absorb, streams cut mid-way); RSS sampled every 10 s; then the ledger is checked.

    python -m bench soak [--soak-seconds 300]
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from tests.upstreams import openai_server
from tests.upstreams.harness import ServerThread, Upstream

from bench.common import RssSampler, start_ailab_process

KEY = "sk-soak-master-key-0123456789"
CONCURRENCY = 16


async def _load(url: str, seconds: float, up: Upstream) -> dict[str, int]:
    counts = {"ok": 0, "stream_ok": 0, "stream_cut": 0, "5xx": 0, "other": 0}
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {KEY}"}

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            stream = (n + i) % 2 == 0
            if i % 97 == 0:
                up.fail_next(status=503)  # absorbed by a retry
            if stream and i % 89 == 0:
                up.fail_next(cut_after=2)  # ends with an error event after the first byte
            body = {
                "model": "soak",
                "messages": [{"role": "user", "content": f"soak {n} {i}"}],
                "stream": stream,
            }
            r = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
            if r.status_code >= 500:
                counts["5xx"] += 1
            elif r.status_code != 200:
                counts["other"] += 1
            elif stream:
                counts["stream_cut" if "stream_interrupted" in r.text else "stream_ok"] += 1
            else:
                counts["ok"] += 1

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
        await asyncio.gather(*(worker(n, client) for n in range(CONCURRENCY)))
    return counts


def run(seconds: int = 300, out: Path | None = None) -> dict[str, Any]:
    up = Upstream(name="soak", api_key="sk-up")
    upstream = ServerThread(openai_server.make_app(up)).start()
    work = Path(tempfile.mkdtemp(prefix="ailab-soak-"))
    cfg = {
        "model_list": [
            {
                "model_name": "soak",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-up",
                    "api_base": f"{upstream.url}/v1",
                },
            }
        ],
        "router_settings": {"num_retries": 2, "retry_backoff": 0.01, "cooldown_time": 0},
        "ailab": {"discover_ollama": False},
    }
    (work / "ailab.yaml").write_text(yaml.safe_dump(cfg))
    proc, url, _ = start_ailab_process(work / "ailab.yaml", work / "data", KEY)
    with RssSampler(proc.pid, interval=10) as rss:
        counts = asyncio.run(_load(url, seconds, up))
        metrics = httpx.get(f"{url}/metrics").text
    proc.terminate()
    proc.wait(timeout=60)
    upstream.stop()
    from ailab.db import make_engine
    from ailab.ledger import totals

    engine = make_engine(f"sqlite:///{work / 'data' / 'ailab.db'}")
    ledger = totals(engine)
    engine.dispose()
    sent = sum(counts.values())
    warm = [mb for t, mb in rss.samples if t >= 30] or [mb for _, mb in rss.samples]
    result = {
        "seconds": seconds,
        "requests": sent,
        "rps": sent / seconds,
        "counts": counts,
        "ledger_rows": ledger.requests,
        "ledger_errors": ledger.errors,
        "dropped": _metric(metrics, "ailab_ledger_dropped_rows_total"),
        "rss_mb": [(round(t), round(mb, 1)) for t, mb in rss.samples],
        "rss_growth_after_warmup": (warm[-1] - warm[0]) / warm[0] if warm else 0.0,
    }
    print(f"\nsoak: {sent:,} requests in {seconds} s ({result['rps']:.0f}/s), outcomes {counts}")
    print(
        f"  ledger rows {ledger.requests:,} (= requests: {ledger.requests == sent}), dropped {result['dropped']}"
    )
    print(f"  RSS MiB every 10 s: {[mb for _, mb in result['rss_mb']]}")
    print(f"  RSS growth after 30 s warm-up: {result['rss_growth_after_warmup'] * 100:+.1f}%")
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))
