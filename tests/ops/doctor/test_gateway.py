"""Gateway checks: port in use, upstream unreachable or key rejected, routing errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from tests.conftest import UPSTREAM_KEY, model, start_upstream
from tests.ops.doctor.conftest import run_check, serving
from tests.upstreams import ollama_server, openai_server
from tests.upstreams.harness import ServerThread, free_port


def test_port_free_then_taken_by_another_process_then_served_by_the_lab(lab_config, make_gateway):
    port = free_port()
    loaded = lab_config({"ailab": {"port": port}})
    result = run_check(loaded, "port")
    assert result.status == "pass" and "free" in result.saw

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time\n"
            f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        result = run_check(loaded, "port")
        assert result.status == "fail"
        assert f"pid {holder.pid}" in result.saw  # names the process that holds it
        assert result.runbook == "docs/runbooks/port-in-use.md"
    finally:
        holder.kill()
        holder.wait()

    gw = make_gateway({"model_list": []})
    result = run_check(serving(gw), "port")
    assert result.status == "pass" and "served by this lab" in result.saw


def test_stopped_upstream_fails_and_passes_once_it_is_back(lab_config):
    up = start_upstream("openai", openai_server.make_app)
    port = up.server.port
    loaded = lab_config(
        {"model_list": [model("gpt", "openai/gpt-4o-mini", f"{up.url}/v1", api_key=UPSTREAM_KEY)]}
    )
    assert run_check(loaded, "upstreams").status == "pass"

    up.server.stop()
    result = run_check(loaded, "upstreams")
    assert result.status == "fail"
    assert "unreachable" in result.saw and str(port) in result.saw

    again = ServerThread(openai_server.make_app(up.up), port).start()
    try:
        assert run_check(loaded, "upstreams").status == "pass"
    finally:
        again.stop()


def test_wrong_provider_key_is_reported_as_rejected_without_printing_it(lab_config, openai_upstream):
    base = f"{openai_upstream.url}/v1"
    wrong = "sk-wrong-key-do-not-print"
    loaded = lab_config({"model_list": [model("gpt", "openai/gpt-4o-mini", base, api_key=wrong)]})
    result = run_check(loaded, "upstreams")
    assert result.status == "fail"
    assert "key rejected" in result.saw and "401" in result.saw
    assert wrong not in result.saw + result.fix

    loaded = lab_config({"model_list": [model("gpt", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY)]})
    assert run_check(loaded, "upstreams").status == "pass"


def test_ollama_upstream_is_probed_on_its_tags_endpoint(lab_config):
    up = start_upstream("ollama", ollama_server.make_app, api_key=None)
    try:
        loaded = lab_config({"model_list": [model("llama", "ollama/llama3.2", up.url)]})
        assert run_check(loaded, "upstreams").status == "pass"
        assert up.up.requests("/api/tags")
    finally:
        up.server.stop()
    assert run_check(loaded, "upstreams").status == "fail"


def test_alias_to_an_unknown_group_fails_until_it_points_at_a_served_group(lab_config, openai_upstream):
    models = [model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)]
    loaded = lab_config({"model_list": models, "router_settings": {"model_group_alias": {"gpt-4": "gpt-4x"}}})
    result = run_check(loaded, "routing")
    assert result.status == "fail"
    assert "'gpt-4'" in result.saw and "'gpt-4x'" in result.saw

    loaded = lab_config({"model_list": models, "router_settings": {"model_group_alias": {"gpt-4": "gpt"}}})
    result = run_check(loaded, "routing")
    assert result.status == "pass", result.saw


def test_fallback_to_a_group_whose_entries_were_skipped_fails(lab_config, openai_upstream):
    models = [
        model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
        model("bedrock", "bedrock/claude", "http://127.0.0.1:1"),  # no adapter: skipped at start
    ]
    loaded = lab_config({"model_list": models, "router_settings": {"fallbacks": [{"gpt": ["bedrock"]}]}})
    result = run_check(loaded, "routing")
    assert result.status == "fail" and "'bedrock'" in result.saw
    config = run_check(loaded, "config")
    assert config.status == "warn" and "bedrock" in config.saw


def test_deployment_in_cooldown_on_the_running_lab_warns(make_gateway, openai_upstream):
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
            ]
        }
    )
    loaded = serving(gw)
    assert run_check(loaded, "routing").status == "pass"
    assert gw.app.state.router is not None
    for dep in gw.app.state.router.groups["gpt"]:
        dep.state.cooldown_until = time.monotonic() + 60
    result = run_check(loaded, "routing")
    assert result.status == "warn" and "cooldown" in result.saw


def test_each_provider_is_probed_on_its_own_model_list_with_its_own_key_header():
    from ailab.gateway.types import Deployment
    from ailab.ops.doctor.gateway import probe_for

    def dep(provider: str, base: str) -> Deployment:
        return Deployment(
            id="d",
            group="g",
            provider=provider,
            provider_label=provider,
            price_id=None,
            model="m",
            api_base=base,
            api_key=None,
        )

    cases = {
        ("openai", "http://h/v1"): ("http://h/v1/models", "Authorization", "Bearer k"),
        ("anthropic", "https://api.anthropic.com"): ("https://api.anthropic.com/v1/models", "x-api-key", "k"),
        ("anthropic", "http://h/v1"): ("http://h/v1/models", "x-api-key", "k"),
        ("gemini", "https://g"): ("https://g/v1beta/models", "x-goog-api-key", "k"),
        ("ollama", "http://h:11434"): ("http://h:11434/api/tags", "Authorization", "Bearer k"),
        ("azure", "https://a"): ("https://a/openai/models?api-version=2024-10-21", "api-key", "k"),
    }
    for (provider, base), (url, header, value) in cases.items():
        probe = probe_for(dep(provider, base), "k")
        assert probe is not None
        assert probe.url == url and probe.headers[header] == value, provider
    assert probe_for(dep("local", ""), None) is None
