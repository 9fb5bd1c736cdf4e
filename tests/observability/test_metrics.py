"""/metrics exposes the gateway's counters and histograms, with config names as labels only."""

from __future__ import annotations

import contextlib

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER, UPSTREAM_KEY, model


def scrape(url: str) -> dict[str, list]:
    text = httpx.get(f"{url}/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples, name, **labels) -> float:
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_cover_requests_tokens_cost_retries_and_ledger(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
            ],
            "router_settings": {"num_retries": 1, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    openai_upstream.up.fail_next(status=500)
    client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "a b c"}])
    list(
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}], stream=True)
    )
    with contextlib.suppress(openai.NotFoundError):
        client.chat.completions.create(
            model="secret-user-text-model", messages=[{"role": "user", "content": "x"}]
        )
    gw.flush()
    m = scrape(gw.url)
    assert value(m["ailab_requests"], "ailab_requests_total", model="gpt", status="200", endpoint="chat") == 2
    assert value(m["ailab_retries"], "ailab_retries_total", model="gpt") == 1
    assert value(m["ailab_tokens"], "ailab_tokens_total", model="gpt", direction="prompt") == 6 + 4
    assert value(m["ailab_cost_usd"], "ailab_cost_usd_total", model="gpt") > 0
    assert value(m["ailab_time_to_first_token_seconds"], "ailab_time_to_first_token_seconds_count") == 1
    # Three rows: the refused 404 is ledgered too (with no model group, so its name is no label).
    assert value(m["ailab_ledger_written_rows"], "ailab_ledger_written_rows_total") == 3
    assert value(m["ailab_requests"], "ailab_requests_total", model="-", status="404") == 1
    assert value(m["ailab_ledger_dropped_rows"], "ailab_ledger_dropped_rows_total") == 0
    assert "ailab_ledger_queue_depth" in m and "ailab_in_flight_requests" in m
    assert value(m["ailab_upstream_errors"], "ailab_upstream_errors_total", kind="http") == 1
    text = httpx.get(f"{gw.url}/metrics").text
    for secret in (MASTER, UPSTREAM_KEY, "secret-user-text-model", "a b c"):
        assert secret not in text


def test_health_live_and_ready(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [model("gpt", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 0, "allowed_fails": 0, "cooldown_time": 30},
        }
    )
    assert httpx.get(f"{gw.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gw.url}/health/ready").json()
    assert ready["status"] == "ok" and ready["database"] == "ok"
    assert ready["deployments"][0]["state"] == "ok"
    openai_upstream.up.fail_next(status=500)
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    with contextlib.suppress(openai.APIStatusError):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    dep = httpx.get(f"{gw.url}/health/ready").json()["deployments"][0]
    assert dep["state"] == "cooldown" and dep["last_error"] == "http 500"
    assert UPSTREAM_KEY not in httpx.get(f"{gw.url}/health/ready").text


def test_metrics_need_a_key_beyond_loopback(openai_upstream, make_gateway):
    gw = make_gateway({}, host="0.0.0.0")
    assert httpx.get(f"{gw.url}/metrics").status_code == 401
    ok = httpx.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    assert ok.status_code == 200 and "ailab_requests" in ok.text
    assert httpx.get(f"{gw.url}/health/live").status_code == 200  # probes stay open
