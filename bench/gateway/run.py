"""Gateway benchmark: direct nginx upstream, nginx proxy_pass, a bare Python pass-through, ailab (chat, and the
same requests on /v1/messages and /v1/responses translated to the OpenAI upstream, in `--rounds` rounds of
rotating order, each row the median) and LiteLLM, side by side in one run,
non-streaming and streaming (wrk, concurrency 32, 2 workers each), plus added latency at one connection, peak
RSS and time to ready.

    python -m bench gateway [--seconds 10] [--litellm PATH_TO_litellm] [--ailab-only] [--rounds 3]

`--ailab-only` measures just ailab's chat, /v1/messages and /v1/responses rows at concurrency 32 (the
translated endpoints' ratios to chat, in a fraction of the run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from bench.common import RssSampler, WrkResult, free_port, require_tools, start_ailab_process, wait_ready, wrk
from bench.gateway import nginx

KEY = "sk-bench-master-key-0123456789"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@dataclass
class Row:
    target: str
    mode: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mb: float | None


@dataclass
class Ports:
    json: int
    sse: int
    proxy_json: int
    proxy_sse: int


def _bodies(model_json: str, model_sse: str) -> dict[str, dict[str, Any]]:
    return {
        "json": {"model": model_json, "messages": MESSAGES},
        "stream": {"model": model_sse, "messages": MESSAGES, "stream": True},
    }


def _messages_bodies(model_json: str, model_sse: str) -> dict[str, dict[str, Any]]:
    """The same requests on the Anthropic Messages API (translated to the OpenAI-speaking upstream)."""
    return {
        mode: {"max_tokens": 256, **{k: v for k, v in body.items() if k != "stream_options"}}
        for mode, body in _bodies(model_json, model_sse).items()
    }


def _responses_bodies() -> dict[str, dict[str, Any]]:
    """/v1/responses with the SDK's defaults (stored), and unstored."""
    return {
        "json": {"model": "bench-json", "input": "Say hello."},
        "stream": {"model": "bench-sse", "input": "Say hello.", "stream": True},
        "json-nostore": {"model": "bench-json", "input": "Say hello.", "store": False},
    }


def measure(
    name: str,
    url: str,
    bodies: dict[str, dict[str, Any]],
    headers: dict[str, str],
    seconds: int,
    pid: int | None,
    conns: int,
) -> list[Row]:
    rows = []
    for mode, body in bodies.items():
        wrk(url, body, headers, conns, 2)  # warm-up
        if pid is not None:
            with RssSampler(pid) as rss:
                r = wrk(url, body, headers, conns, seconds)
            peak: float | None = rss.peak
        else:
            r, peak = wrk(url, body, headers, conns, seconds), None
        rows.append(Row(name, f"{mode} c={conns}", r.rps, r.p50_ms, r.p99_ms, r.errors + r.non2xx, peak))
        print(
            f"  {name:12s} {mode:6s} c={conns:<3d} {r.rps:9.0f} rps  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms"
            f"  errors {r.errors + r.non2xx}",
            flush=True,
        )
    return rows


def start_ailab(work: Path, ports: Ports, journal: bool = True) -> tuple[subprocess.Popen[bytes], str, float]:
    """ailab as shipped; `journal=False` turns the usage journal off (`ailab.ledger_journal`) to price it."""
    cfg = {
        "model_list": [
            {
                "model_name": "bench-json",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_key": "sk-up",
                    "api_base": f"http://127.0.0.1:{ports.json}/v1",
                },
                # /v1/responses is translated to chat (the nginx upstream answers chat completions).
                "model_info": {
                    "input_cost_per_token": 1e-7,
                    "output_cost_per_token": 4e-7,
                    "responses_api": False,
                },
            },
            {
                "model_name": "bench-sse",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_key": "sk-up",
                    "api_base": f"http://127.0.0.1:{ports.sse}/v1",
                },
                # /v1/responses is translated to chat (the nginx upstream answers chat completions).
                "model_info": {
                    "input_cost_per_token": 1e-7,
                    "output_cost_per_token": 4e-7,
                    "responses_api": False,
                },
            },
        ],
        "router_settings": {"num_retries": 0},
        "ailab": {"discover_ollama": False, "ledger_journal": journal},
    }
    name = "ailab" if journal else "ailab-nojournal"
    (work / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return start_ailab_process(work / f"{name}.yaml", work / f"{name}-data", KEY)


def start_litellm(litellm: str, work: Path, ports: Ports) -> tuple[subprocess.Popen[bytes], str, float]:
    cfg = {
        "model_list": [
            {
                "model_name": "bench-json",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_key": "sk-up",
                    "api_base": f"http://127.0.0.1:{ports.json}/v1",
                },
            },
            {
                "model_name": "bench-sse",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_key": "sk-up",
                    "api_base": f"http://127.0.0.1:{ports.sse}/v1",
                },
            },
        ],
        "general_settings": {"master_key": KEY},
    }
    (work / "litellm.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    t0 = time.monotonic()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    proc = subprocess.Popen(
        [litellm, "--config", str(work / "litellm.yaml"), "--port", str(port), "--num_workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/readiness", timeout=180)
    return proc, url, time.monotonic() - t0


def start_passthrough(ports: Ports) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_UPSTREAM_JSON": f"http://127.0.0.1:{ports.json}/v1/chat/completions",
        "BENCH_UPSTREAM_SSE": f"http://127.0.0.1:{ports.sse}/v1/chat/completions",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.gateway.passthrough:app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            import httpx

            httpx.post(f"{url}/v1/chat/completions", json=_bodies("x", "x")["json"], timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def run(
    seconds: int = 10,
    litellm: str | None = None,
    out: Path | None = None,
    ailab_only: bool = False,
    rounds: int = 2,
) -> dict[str, Any]:
    require_tools("nginx", "wrk")
    work = Path(tempfile.mkdtemp(prefix="ailab-bench-"))
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    ngx = nginx.start(nginx.config(work, ports.json, ports.sse, ports.proxy_json, ports.proxy_sse))
    time.sleep(0.5)
    rows: list[Row] = []
    ready: dict[str, float] = {}
    auth = {"Authorization": f"Bearer {KEY}"}
    path = "/v1/chat/completions"
    try:
        for conns in (32,) if ailab_only else (32, 1):
            print(f"-- concurrency {conns}", flush=True)
            secs = seconds if conns > 1 else max(5, seconds // 2)
            if not ailab_only:
                rows += _floors(ports, secs, conns)
            proc, url, ready["ailab"] = start_ailab(work, ports)
            rows += endpoint_rows(url, auth, secs, proc.pid, conns, rounds if conns > 1 else 1)
            stop(proc)
            if ailab_only:
                continue
            proc, url, _ = start_ailab(work, ports, journal=False)
            rows += measure(
                "ailab-nojournal", url + path, _bodies("bench-json", "bench-sse"), auth, secs, proc.pid, conns
            )
            stop(proc)
            if litellm:
                proc, url, ready["litellm"] = start_litellm(litellm, work, ports)
                rows += measure(
                    "litellm", url + path, _bodies("bench-json", "bench-sse"), auth, secs, proc.pid, conns
                )
                stop(proc)
    finally:
        stop(ngx)
    result = {"rows": [asdict(r) for r in rows], "ready_seconds": ready, "seconds": seconds}
    report(result)
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def endpoint_rows(url: str, auth: dict[str, str], secs: int, pid: int, conns: int, rounds: int) -> list[Row]:
    """Chat, /v1/messages and /v1/responses on one lab, in `rounds` rounds whose order rotates (the ledger and
    the response store grow as a run goes on, so a fixed order would favour whatever runs first); each row is
    the median of its rounds (errors summed, the peak RSS the highest)."""
    targets = [
        ("ailab", "/v1/chat/completions", _bodies("bench-json", "bench-sse")),
        ("ailab-messages", "/v1/messages", _messages_bodies("bench-json", "bench-sse")),
        ("ailab-responses", "/v1/responses", _responses_bodies()),
    ]
    seen: dict[tuple[str, str], list[Row]] = {}
    for n in range(max(1, rounds)):
        for name, path, bodies in targets[n % 3 :] + targets[: n % 3]:
            for row in measure(name, url + path, bodies, auth, secs, pid, conns):
                seen.setdefault((name, row.mode), []).append(row)
    return [_median_row(group) for _, group in sorted(seen.items(), key=lambda kv: _order(kv[0], targets))]


def _order(key: tuple[str, str], targets: list[tuple[str, str, dict[str, Any]]]) -> tuple[int, str]:
    return ([t[0] for t in targets].index(key[0]), key[1])


def _median_row(group: list[Row]) -> Row:
    def mid(values: list[float]) -> float:
        return float(statistics.median(values))

    peaks = [r.peak_rss_mb for r in group if r.peak_rss_mb is not None]
    return Row(
        group[0].target,
        group[0].mode,
        mid([r.rps for r in group]),
        mid([r.p50_ms for r in group]),
        mid([r.p99_ms for r in group]),
        sum(r.errors for r in group),
        max(peaks) if peaks else None,
    )


def _floors(ports: Ports, secs: int, conns: int) -> list[Row]:
    """The rows ailab is compared with: nginx direct, nginx proxy_pass and the bare Python pass-through."""
    rows: list[Row] = []
    path = "/v1/chat/completions"
    for name, port_json, port_sse in (
        ("direct", ports.json, ports.sse),
        ("nginx-proxy", ports.proxy_json, ports.proxy_sse),
    ):
        for mode, port in (("json", port_json), ("stream", port_sse)):
            body = _bodies("bench", "bench")[mode]
            rows += measure(name, f"http://127.0.0.1:{port}{path}", {mode: body}, {}, secs, None, conns)
    proc, url = start_passthrough(ports)
    rows += measure("python-floor", url + path, _bodies("b", "b"), {}, secs, proc.pid, conns)
    stop(proc)
    return rows


def _get(rows: list[dict[str, Any]], target: str, mode: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target and r["mode"] == mode), None)


def report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print("\n| target | mode | RPS | p50 ms | p99 ms | errors | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-"
        print(
            f"| {r['target']} | {r['mode']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} | {rss} |"
        )
    print("\nRatios (same run):")
    for mode in ("json c=32", "stream c=32"):
        a, lt = _get(rows, "ailab", mode), _get(rows, "litellm", mode)
        floor, ngx = _get(rows, "python-floor", mode), _get(rows, "nginx-proxy", mode)
        if a and lt:
            print(f"  {mode}: ailab / LiteLLM RPS = {a['rps'] / lt['rps']:.1f}x")
        if a and floor:
            print(f"  {mode}: ailab / python floor RPS = {a['rps'] / floor['rps']:.2f}")
        if a and ngx:
            print(f"  {mode}: ailab / nginx proxy_pass RPS = {a['rps'] / ngx['rps']:.2f}")
        msgs = _get(rows, "ailab-messages", mode)
        if a and msgs:
            print(f"  {mode}: ailab /v1/messages / chat RPS = {msgs['rps'] / a['rps']:.2f}")
        resp = _get(rows, "ailab-responses", mode)
        if a and resp:
            print(f"  {mode}: ailab /v1/responses / chat RPS = {resp['rps'] / a['rps']:.2f}")
        off = _get(rows, "ailab-nojournal", mode)
        if a and off:
            print(f"  {mode}: ailab with / without the usage journal RPS = {a['rps'] / off['rps']:.3f}")
    for mode in ("json c=1", "stream c=1"):
        a, d = _get(rows, "ailab", mode), _get(rows, "direct", mode)
        if a and d:
            print(
                f"  {mode}: ailab added latency p50 = {a['p50_ms'] - d['p50_ms']:.2f} ms, "
                f"p99 = {a['p99_ms'] - d['p99_ms']:.2f} ms"
            )
    for name, secs in result["ready_seconds"].items():
        print(f"  {name} ready in {secs:.2f} s")


__all__ = ["WrkResult", "run"]
