"""Stored responses under `ailab up --workers 2`: each worker buffers what it stores and writes behind, yet a
response created through one worker is retrieved and continued through the other at once (new connections,
in waves, so both workers take requests); a clean stop (SIGTERM) writes every buffered response."""

from __future__ import annotations

import asyncio
import signal

import httpx
import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.labproc import run_lab

AUTH = {"Authorization": f"Bearer {MASTER}"}


async def _round_trip(url: str, n: int) -> list[str]:
    async def one(i: int) -> str:
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as client:
            created = await client.post(f"{url}/v1/responses", json={"model": "gpt", "input": f"hello {i}"})
            assert created.status_code == 200, created.text
            rid = str(created.json()["id"])
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as client:  # maybe the other worker
            got = await client.get(f"{url}/v1/responses/{rid}")
            assert got.status_code == 200 and got.json()["id"] == rid, got.text
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as client:
            follow = {"model": "gpt", "input": "and then?", "previous_response_id": rid, "store": False}
            r = await client.post(f"{url}/v1/responses", json=follow)
            assert r.status_code == 200, r.text
        return rid

    ids: list[str] = []
    for wave in range(4):
        ids += await asyncio.gather(*(one(wave * n + i) for i in range(n)))
    return ids


def test_stored_responses_cross_workers_and_survive_a_clean_stop(openai_upstream, tmp_path) -> None:
    cfg = tmp_path / "ailab.yaml"
    entry = model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    cfg.write_text(yaml.safe_dump({"model_list": [entry], "ailab": {"discover_ollama": False}}))
    data = tmp_path / "data"
    proc, url = run_lab(cfg, data, "--workers", "2")
    try:
        ids = asyncio.run(_round_trip(url, 6))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    proc, url = run_lab(cfg, data)  # one worker, nothing buffered: only the database answers
    try:
        for rid in ids:
            assert httpx.get(f"{url}/v1/responses/{rid}", headers=AUTH, timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
