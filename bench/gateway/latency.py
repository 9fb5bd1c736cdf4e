"""Added latency at one connection: `wrk -c1 -t1` against a static nginx upstream directly, through nginx
`proxy_pass`, the bare Python pass-through, ailab as shipped (a user's key with rpm/tpm limits: auth, limits,
routing, metrics, ledger and journal on), LiteLLM and Portkey's gateway when installed (make bench-deps).
Every server stays up for the whole run; the rounds alternate the order so noise hits all alike, and each
percentile is the median over the rounds.

    python -m bench latency [--seconds 5] [--rounds 4] [--base-src DIR] [--conns 1 --workers 1]

`--base-src` adds `ailab-base`, the lab from another source tree (before/after in one run); `--conns 32
--workers 2` turns it into the throughput comparison (RPS and p99 against the Python floor).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench.common import free_port, require_tools, start_ailab_process, wait_ready
from bench.gateway import nginx

KEY = "sk-bench-master-key-0123456789"
BODY = {"model": "bench-json", "messages": [{"role": "user", "content": "Say hello."}]}
PATH = "/v1/chat/completions"
ROOT = Path(__file__).resolve().parents[2]
PORTKEY = ROOT / ".bench/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
# wrk's own summary: percentiles (µs) to p99.9, which `--latency` does not print, and the request count.
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LAT %d %d %d %d %d %d %d %d\\n", latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Sample:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    rps: float
    errors: int
    cpu_us: float | None = None  # the server's CPU time (all its processes and threads) per request


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its threads and its live descendants (the workers)."""
    total, pids, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            pids.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def wrk_sample(target: Target, seconds: int, conns: int) -> Sample:
    script = f"wrk.method = 'POST'\nwrk.body = [[{json.dumps({**BODY})}]]\n"
    for k, v in {"Content-Type": "application/json", **target.headers}.items():
        script += f"wrk.headers['{k}'] = '{v}'\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + DONE)
    threads = 1 if conns == 1 else 2
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "-s", f.name, target.url]
    pid = target.proc.pid if target.proc is not None else None
    cpu0 = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid is not None else None
    Path(f.name).unlink()
    m = re.search(r"^LAT (.*)$", out, re.M)
    if m is None:
        raise RuntimeError(f"wrk gave no summary for {target.name}: {out}")
    p50, p90, p99, p999, n, dur_us, socket_errors, non2xx = (int(x) for x in m.group(1).split())
    per_request = cpu * 1e6 / n if cpu is not None and n else None
    return Sample(
        p50 / 1e3, p90 / 1e3, p99 / 1e3, p999 / 1e3, n / (dur_us / 1e6), socket_errors + non2xx, per_request
    )


def _ailab_config(work: Path, name: str, upstream: int) -> Path:
    cfg = {
        "model_list": [
            {
                "model_name": "bench-json",
                "litellm_params": {
                    "model": "openai/bench",
                    "api_key": "sk-up",
                    "api_base": f"http://127.0.0.1:{upstream}/v1",
                },
                "model_info": {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7},
            }
        ],
        "router_settings": {"num_retries": 0},
        "ailab": {"discover_ollama": False},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_ailab(work: Path, name: str, upstream: int, workers: int, src: Path | None) -> Target:
    """ailab as shipped, served to a user's key with rpm and tpm limits (far above what wrk reaches, so
    every request is counted and none refused)."""
    before = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = f"{src}{os.pathsep}{ROOT}"  # the `ailab up` child imports that tree
    try:
        proc, url, _ = start_ailab_process(
            _ailab_config(work, name, upstream), work / f"{name}-data", KEY, workers=workers
        )
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    user = admin.post("/api/users", json={"username": "bench", "password": "bench-password-123"}).json()
    limits = {"rpm": 100_000_000, "tpm": 10_000_000_000}
    key = admin.post("/api/keys", json={"user_id": user["id"], "name": "bench", **limits}).json()["key"]
    return Target(name, url + PATH, {"Authorization": f"Bearer {key}"}, proc)


def start_passthrough(upstream: int, workers: int) -> Target:
    port = free_port()
    env = {**os.environ, "BENCH_UPSTREAM_JSON": f"http://127.0.0.1:{upstream}{PATH}"}
    argv = [sys.executable, "-m", "uvicorn", "bench.gateway.passthrough:app", "--port", str(port)]
    argv += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{PATH}"
    for _ in range(400):
        try:
            httpx.post(url, json=BODY, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return Target("python-floor", url, {}, proc)


def start_litellm(litellm: str, work: Path, upstream: int, workers: int) -> Target:
    model = {"model": "openai/bench", "api_key": "sk-up", "api_base": f"http://127.0.0.1:{upstream}/v1"}
    cfg = {
        "model_list": [{"model_name": "bench-json", "litellm_params": model}],
        "general_settings": {"master_key": KEY},
    }
    (work / "litellm.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    argv = [
        litellm,
        "--config",
        str(work / "litellm.yaml"),
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health/readiness", timeout=180)
    return Target("litellm", url + PATH, {"Authorization": f"Bearer {KEY}"}, proc)


def start_portkey(upstream: int) -> Target:
    """Portkey's Node gateway (one process: it has no worker option), the upstream named by headers."""
    port = free_port()
    argv = ["node", str(PORTKEY), f"--port={port}", "--headless"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    headers = {
        "Authorization": "Bearer sk-up",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{upstream}/v1",
    }
    url = f"http://127.0.0.1:{port}{PATH}"
    for _ in range(400):
        try:
            if httpx.post(url, json=BODY, headers=headers, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return Target("portkey", url, headers, proc)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def run(
    seconds: int = 5,
    rounds: int = 4,
    litellm: str | None = None,
    base_src: Path | None = None,
    conns: int = 1,
    workers: int = 1,
    out: Path | None = None,
) -> dict[str, Any]:
    require_tools("nginx", "wrk")
    work = Path(tempfile.mkdtemp(prefix="ailab-latency-"))
    up, sse, pj, ps = free_port(), free_port(), free_port(), free_port()
    ngx = nginx.start(nginx.config(work, up, sse, pj, ps))
    time.sleep(0.5)
    starters: list[Callable[[], Target]] = [
        lambda: Target("direct", f"http://127.0.0.1:{up}{PATH}", {}),
        lambda: Target("nginx-proxy", f"http://127.0.0.1:{pj}{PATH}", {}),
        lambda: start_passthrough(up, workers),
        lambda: start_ailab(work, "ailab", up, workers, None),
    ]
    if base_src is not None:
        starters.append(lambda: start_ailab(work, "ailab-base", up, workers, base_src.resolve()))
    if litellm:
        starters.append(lambda: start_litellm(litellm, work, up, workers))
    else:
        print("note: LiteLLM not found; left out (make bench-deps installs it)")
    if PORTKEY.exists():
        starters.append(lambda: start_portkey(up))
    else:
        print(f"note: {PORTKEY.relative_to(ROOT)} not found; Portkey left out (make bench-deps installs it)")
    targets: list[Target] = []
    samples: dict[str, list[Sample]] = {}
    try:
        for i, start in enumerate(starters):
            try:
                targets.append(start())
            except RuntimeError as exc:  # a peer that does not come up is left out, not the whole run
                if i < 4 + (base_src is not None):  # the lab and the floors are not optional
                    raise
                print(f"note: a peer did not start ({exc}); left out")
        for t in targets:  # warm-up: connections, caches, the first collections
            wrk_sample(t, 2, conns)
            samples[t.name] = []
        for r in range(rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for t in order:
                s = wrk_sample(t, seconds, conns)
                samples[t.name].append(s)
                print(
                    f"  round {r} {t.name:12s} p50 {s.p50_ms:6.3f} p90 {s.p90_ms:6.3f} p99 {s.p99_ms:6.3f} "
                    f"p99.9 {s.p999_ms:6.3f} ms  {s.rps:8.0f} rps  CPU {_cpu(s.cpu_us)} µs/req  errors {s.errors}",
                    flush=True,
                )
    finally:
        for t in targets:
            stop(t.proc)
        stop(ngx)
    result = {
        "conns": conns,
        "workers": workers,
        "seconds": seconds,
        "rounds": rounds,
        "samples": {name: [asdict(s) for s in ss] for name, ss in samples.items()},
        "median": {name: asdict(median(ss)) for name, ss in samples.items()},
    }
    report(result)
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def _cpu(us: float | None) -> str:
    return "-" if us is None else f"{us:.0f}"


def median(samples: list[Sample]) -> Sample:
    def med(field: str) -> float:
        return float(statistics.median(getattr(s, field) for s in samples))

    cpu = [s.cpu_us for s in samples if s.cpu_us is not None]
    return Sample(
        med("p50_ms"),
        med("p90_ms"),
        med("p99_ms"),
        med("p999_ms"),
        med("rps"),
        sum(s.errors for s in samples),
        statistics.median(cpu) if cpu else None,
    )


def report(result: dict[str, Any]) -> None:
    med = result["median"]
    direct = med["direct"]
    floor = med.get("python-floor")
    cols = ("p50_ms", "p90_ms", "p99_ms", "p999_ms")
    print(f"\nwrk -c{result['conns']}, {result['workers']} worker(s); medians of {result['rounds']} rounds")
    print(
        "| target | p50 ms | p90 ms | p99 ms | p99.9 ms | RPS | CPU µs/req | added p50 | added p90 | added p99 "
        "| added p99.9 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in med.items():
        vals = " | ".join(f"{s[c]:.3f}" for c in cols)
        added = " | ".join("-" if name == "direct" else f"{s[c] - direct[c]:+.3f}" for c in cols)
        errs = f" ({s['errors']} errors)" if s["errors"] else ""
        print(f"| {name}{errs} | {vals} | {s['rps']:.0f} | {_cpu(s['cpu_us'])} | {added} |")
    if floor:
        for name in ("ailab", "ailab-base"):
            if name in med:
                a = med[name]
                print(
                    f"  {name} / python floor: RPS {a['rps'] / floor['rps']:.2f}, p99 {a['p99_ms'] / floor['p99_ms']:.2f}"
                )
