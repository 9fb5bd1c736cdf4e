"""Budgets and rate limits through the gateway under a burst of 200 concurrent requests: in one process
(memory) and across two real `ailab up` processes sharing Redis."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import yaml

from ailab.access.records import Limits
from ailab.access.service import AccessService
from ailab.config.models import AccessSettings
from ailab.db import all_migrations, make_engine
from ailab.ledger import totals
from tests.conftest import UPSTREAM_KEY, model
from tests.labproc import run_lab

OUT_PRICE = 1e-6  # USD per completion token; prompts are free so estimates are exact upper bounds
PER_REQUEST = Decimal("0.000003")  # the fake upstream answers "echo: hello there" = 3 completion tokens
ESTIMATE = Decimal("0.000005")  # reserved per request: max_tokens = 5
BUDGET_USD = "0.0001"  # 33 requests' worth
BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


def _config(upstream_url: str, **extra) -> dict:
    return {
        "model_list": [
            model(
                "gpt",
                "openai/gpt-4o-mini",
                f"{upstream_url}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"input_cost_per_token": 0, "output_cost_per_token": OUT_PRICE},
            )
        ],
        "router_settings": {"num_retries": 0},
        **extra,
    }


def _keys(engine) -> dict[str, str]:
    from ailab.db import migrate

    migrate(engine, all_migrations())
    access = AccessService.build(engine, AccessSettings())
    uid = access.identity.create_user("test", f"burst{time.monotonic_ns()}", "user").id
    _, budget = access.keys.create(
        "test", user=uid, name="budget", limits=Limits(Limits.usd_to_pusd(BUDGET_USD), "daily")
    )
    _, rpm = access.keys.create("test", user=uid, name="rpm", limits=Limits(rpm=50))
    _, tpm = access.keys.create("test", user=uid, name="tpm", limits=Limits(tpm=300))
    return {"budget": budget, "rpm": rpm, "tpm": tpm}


async def _burst(urls: list[str], key: str, n: int = 200) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks = [
            client.post(
                f"{urls[i % len(urls)]}/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {key}"},
            )
            for i in range(n)
        ]
        return await asyncio.gather(*tasks)


def _check(responses: list[httpx.Response], kind: str, engine) -> None:
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == len(responses), {r.status_code for r in responses}
    assert all(
        f"{kind}_exceeded" == r.json()["error"]["code"] and "retry-after" in r.headers for r in refused
    )
    if kind == "budget":
        spent = totals(engine).cost_usd
        assert spent <= Decimal(BUDGET_USD)  # estimates are upper bounds here, so not even one overshoot
        # Each admitted request reserved its estimate (5 tokens) and settled at 3: at least budget/estimate
        # get in, at most budget/actual.
        assert int(Decimal(BUDGET_USD) / ESTIMATE) <= len(ok) <= int(Decimal(BUDGET_USD) / PER_REQUEST)
    elif kind == "rpm":
        assert len(ok) == 50
    else:
        # tpm counts the estimate (3 prompt + 5 max_tokens) in flight, real tokens after
        assert 300 // 8 <= len(ok) <= 300 // 5


def _wait_for_rows(engine, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while totals(engine).requests < n and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the ledger's row count, not waiting out a flush interval


def test_burst_in_one_gateway(openai_upstream, make_gateway):
    gw = make_gateway(_config(openai_upstream.url))
    keys = _keys(gw.app.state.engine)
    gw.app.state.access.cache.load()
    openai_upstream.up.fail_next(600, delay=0.05)  # keep requests in flight together
    for kind in ("budget", "rpm", "tpm"):
        before = totals(gw.app.state.engine)
        responses = asyncio.run(_burst([gw.url], keys[kind]))
        gw.flush()
        after = totals(gw.app.state.engine)
        # Every request is a row, the refused ones too (429 with its error type).
        assert after.requests - before.requests == len(responses)
        ok = (after.requests - after.errors) - (before.requests - before.errors)
        assert ok == sum(r.status_code == 200 for r in responses)
        _check(responses, kind, gw.app.state.engine)


def test_burst_across_two_gateway_processes_on_redis(openai_upstream, redis_url, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cfg_path = tmp_path / "ailab.yaml"
    db_url = f"sqlite:///{data_dir / 'ailab.db'}"
    limits = {"backend": "redis", "redis_url": redis_url}
    cfg_path.write_text(
        yaml.safe_dump(_config(openai_upstream.url, limits=limits, general_settings={"database_url": db_url}))
    )
    engine = make_engine(db_url)
    keys = _keys(engine)
    procs = []
    try:
        for i in range(2):  # two replicas: a data dir each (one lab per data dir), one database
            procs.append(run_lab(cfg_path, tmp_path / f"replica{i}"))  # one after the other: migrate once
        urls = [u for _, u in procs]
        openai_upstream.up.fail_next(600, delay=0.05)
        rows = 0
        for kind in ("budget", "rpm"):
            responses = asyncio.run(_burst(urls, keys[kind]))
            rows += len(responses)  # every request is a ledger row, refused ones too
            _wait_for_rows(engine, rows)  # the two writers are in the replicas: wait on what they wrote
            _check(responses, kind, engine)
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=30)

    engine.dispose()
