"""The console's first load in Chromium on loopback: bytes transferred and time to interactive.

    python -m bench console [--rounds 10]

A real `ailab up` (one worker) in front of a loopback OpenAI upstream, an admin signed in, a few requests
ledgered; then each round opens the overview in a fresh browser context (cold cache) and reads the
Navigation Timing of the page: `domInteractive`, `domContentLoadedEventEnd` (scripts run, htmx wired: the
page answers input), `loadEventEnd`, and when the live panel first shows data (its first poll answered).
Transferred bytes are the sum of `transferSize` over the document and every resource (compressed).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml
from tests.upstreams import openai_server
from tests.upstreams.harness import ServerThread, Upstream

from bench.common import start_ailab_process

KEY = "sk-bench-console-master-0123456789"
PASSWORD = "correct-horse-battery"
CHROMIUM = "/usr/bin/chromium"

_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const bytes = n.transferSize + res.reduce((s, r) => s + r.transferSize, 0);
  return {interactive: n.domInteractive, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,
          bytes: bytes, resources: res.length};
}"""


def _lab(tmp: Path, upstream: str) -> tuple[Any, str]:
    model = {
        "model_name": "gpt",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{upstream}/v1", "api_key": "sk-up"},
    }
    cfg = tmp / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"model_list": [model], "ailab": {"discover_ollama": False}}))
    proc, url, _ = start_ailab_process(cfg, tmp / "data", KEY, workers=1)
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    admin.post("/api/users", json={"username": "root", "role": "admin", "password": PASSWORD})
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    for i in range(20):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": f"hello {i}"}])
    return proc, url


def _sign_in(browser: Any, url: str) -> Any:
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto("/console/login")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/")
    return context.storage_state()


def _round(browser: Any, url: str, state: Any) -> dict[str, float]:
    context = browser.new_context(base_url=url, storage_state=state)  # signed in, nothing cached
    page = context.new_page()
    page.goto("/console/")
    page.wait_for_function("document.querySelector('[data-metric=rps]')?.textContent.trim() !== ''")
    live = page.evaluate("() => performance.now()")
    page.wait_for_load_state("load")
    out: dict[str, float] = page.evaluate(_TIMING)
    out["live_data"] = live
    context.close()
    return out


def run(rounds: int, out_file: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    up = ServerThread(openai_server.make_app(Upstream(name="openai", api_key="sk-up"))).start()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _lab(Path(tmp), up.url)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                state = _sign_in(browser, url)
                _round(browser, url, state)  # warm the lab (templates, first queries), not the browser
                samples = [_round(browser, url, state) for _ in range(rounds)]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            up.stop()
    summary = {
        key: {"median": statistics.median(s[key] for s in samples), "max": max(s[key] for s in samples)}
        for key in ("interactive", "dcl", "load", "live_data", "bytes")
    }
    print(f"console overview, first load in Chromium on loopback ({rounds} cold contexts):")
    for key, label in (
        ("bytes", "bytes transferred (compressed)"),
        ("interactive", "domInteractive, ms"),
        ("dcl", "DOMContentLoaded end (scripts run), ms"),
        ("load", "load event end, ms"),
        ("live_data", "live panel shows data, ms"),
    ):
        print(f"  {label}: median {summary[key]['median']:.0f}, max {summary[key]['max']:.0f}")
    out_file.write_text(json.dumps({"rounds": rounds, "summary": summary, "samples": samples}, indent=2))
    return summary
