"""`ailab up --workers 2` on the default (in-memory) limits: the lab starts an embedded Redis as the shared
tier, so a key's rpm holds across both workers; the Redis goes away with the lab."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import yaml

from ailab.access.records import Limits
from ailab.access.service import AccessService
from ailab.config.models import AccessSettings
from ailab.db import all_migrations, make_engine, migrate
from ailab.limits.embedded import SOCKET_NAME
from tests.conftest import UPSTREAM_KEY, model
from tests.labproc import run_lab

BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}


def _rpm_key(data) -> str:  # type: ignore[no-untyped-def]
    data.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data / 'ailab.db'}")
    migrate(engine, all_migrations())
    access = AccessService.build(engine, AccessSettings())
    uid = access.identity.create_user("test", "rpm-user", "user").id
    _, key = access.keys.create("test", user=uid, name="rpm", limits=Limits(rpm=3))
    engine.dispose()
    return key


async def _send(url: str, key: str, waves: int, n: int) -> list[int]:
    # A new connection per request, in waves: whichever worker is idle accepts, so both take some.
    async def one() -> int:
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.post(
                f"{url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
            )
            return r.status_code

    out: list[int] = []
    for _ in range(waves):
        out += await asyncio.gather(*(one() for _ in range(n)))
    return out


def test_rpm_holds_across_two_workers(openai_upstream, tmp_path):
    cfg = tmp_path / "ailab.yaml"
    entry = model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    cfg.write_text(yaml.safe_dump({"model_list": [entry], "ailab": {"discover_ollama": False}}))
    data = tmp_path / "data"
    key = _rpm_key(data)
    proc, url = run_lab(cfg, data, "--workers", "2")
    try:
        statuses = asyncio.run(_send(url, key, 8, 8))
        assert statuses.count(200) == 3 and statuses.count(429) == 61, statuses
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "embedded Redis" in out
    deadline = time.monotonic() + 10
    while list(data.rglob(SOCKET_NAME)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(data.rglob(SOCKET_NAME))  # stopped with the lab
