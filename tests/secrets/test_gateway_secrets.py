"""Provider keys from the secret store serve requests, rotate without a restart, and never leak."""

from __future__ import annotations

import logging
import time

import httpx
import openai

from tests.conftest import MASTER, UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "hi"}]


def _wait_until(fn, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while True:
        try:
            fn()
            return time.monotonic() - t0
        except openai.APIStatusError:
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.05)


def test_provider_key_from_vault_serves_and_rotates(bao, openai_upstream, make_gateway):
    kv = bao.client().secrets.kv.v2
    kv.create_or_update_secret(path="ailab/OPENAI_KEY", secret={"value": UPSTREAM_KEY})
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key="secret/OPENAI_KEY")
            ],
            "router_settings": {"num_retries": 0},
            "secrets": {
                "backend": "vault",
                "vault_url": bao.url,
                "vault_token": bao.root_token,
                "refresh_interval": 0.2,
            },
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    assert client.chat.completions.create(model="gpt", messages=MSG).choices[0].message.content == "echo: hi"
    # The provider rotates its key; the new one goes into Vault; the gateway follows without a restart.
    rotated = "sk-upstream-ROTATED-key-77"
    openai_upstream.up.api_key = rotated
    kv.create_or_update_secret(path="ailab/OPENAI_KEY", secret={"value": rotated})
    waited = _wait_until(lambda: client.chat.completions.create(model="gpt", messages=MSG))
    assert waited < 2.0
    last = openai_upstream.up.requests("chat")[-1]["headers"]["authorization"]
    assert last == f"Bearer {rotated}"


def test_missing_secret_stops_the_start_with_its_name(tmp_path):
    import pytest
    import yaml

    from ailab.config import load_config
    from ailab.server import create_app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"model_list": [model("gpt", "openai/x", "http://127.0.0.1:9/v1", api_key="secret/NOPE")]}
        )
    )
    app = create_app(load_config(cfg, tmp_path / "d"))
    import asyncio

    with pytest.raises(Exception, match="NOPE"):
        asyncio.run(app.state.start())


def test_marker_secret_never_leaks(openai_upstream, make_gateway, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    marker = UPSTREAM_KEY  # the upstream's real key, kept only in the local encrypted store
    from ailab.config.models import SecretsSettings
    from ailab.db import all_migrations, make_engine, migrate
    from ailab.secrets import MIGRATIONS, open_secret_store

    data_dir = tmp_path / "data-0"  # the first gateway's data dir (see make_gateway)
    data_dir.mkdir()
    engine = make_engine(f"sqlite:///{data_dir / 'ailab.db'}")
    migrate(engine, all_migrations())
    open_secret_store(SecretsSettings(), engine, data_dir).set("UPSTREAM", marker)
    engine.dispose()
    assert MIGRATIONS
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key="secret/UPSTREAM")
            ],
            "router_settings": {"num_retries": 0},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    client.chat.completions.create(model="gpt", messages=MSG)
    list(client.chat.completions.create(model="gpt", messages=MSG, stream=True))
    # An upstream that echoes the key back in its error (OpenAI does: "Incorrect API key provided: sk-…").
    openai_upstream.up.fail_next(
        status=401, body={"error": {"message": f"Incorrect API key provided: {marker}"}}
    )
    outputs = []
    try:
        client.chat.completions.create(model="gpt", messages=MSG)
    except openai.APIStatusError as exc:
        outputs.append(exc.response.text)
    openai_upstream.up.fail_next(status=500, body={"error": {"message": f"boom {marker}"}})
    stream_err = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={"model": "gpt", "messages": MSG, "stream": True},
    )
    outputs.append(stream_err.text)
    gw.flush()
    h = {"Authorization": f"Bearer {MASTER}"}
    for path in (
        "/metrics",
        "/health/ready",
        "/api/secrets",
        "/api/audit?limit=1000",
        "/api/usage",
        "/openapi.json",
    ):
        outputs.append(httpx.get(f"{gw.url}{path}", headers=h).text)
    outputs.append(caplog.text)
    assert "UPSTREAM" in outputs[4] or any("UPSTREAM" in o for o in outputs)  # names are visible …
    for text in outputs:
        assert marker not in text  # … values never
    assert (data_dir / "ailab.db").read_bytes().find(marker.encode()) == -1
