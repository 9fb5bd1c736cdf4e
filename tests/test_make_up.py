"""`make up` on a fresh copy of the repository installs into .venv, starts the lab and serves a chat request.

It builds a real virtual environment (pip may reuse its cache), so it is the slowest test here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import UPSTREAM_KEY, model
from tests.upstreams.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
# A whole virtual environment is installed (from pip's cache when warm): minutes on a busy machine.
pytestmark = pytest.mark.timeout(900)


def fresh_copy(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_make_up_on_a_fresh_copy_serves_ready_and_chat(openai_upstream, tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    (repo / "ailab.yaml").write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
                ]
            }
        )
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "VIRTUAL_ENV"))}
    env["AILAB_PORT"] = str(port)
    log_path = tmp_path / "make-up.log"
    log = log_path.open("wb")  # a file, not a pipe: pip's progress would fill a pipe nobody reads yet
    proc = subprocess.Popen(
        ["make", "up"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        output = log_path.read_text(errors="replace")
        assert proc.poll() is None, output
        # Progress while installing: announced steps, and pip's own per-package lines in between.
        assert "==> installing Local AI Lab" in output and "==> starting the lab" in output
        between = output.split("==> installing Local AI Lab", 1)[1].split("==> installed", 1)[0]
        assert between.count("\n") > 20, between
        key = (repo / ".ailab" / "master_key").read_text().strip()
        r = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt", "messages": [{"role": "user", "content": "fresh"}]},
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: fresh"
        assert (repo / ".venv" / "bin" / "ailab").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
