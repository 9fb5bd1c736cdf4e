"""`ailab ci init`: the workflow for a lab's own repository validates against GitHub's workflow schema (the copy
vendored by check-jsonschema; GitHub Actions cannot run here), and its `run:` steps pass when run locally, except
the tools only the GitHub runner has (docker, kubectl, helm): there the lab's own validators stand in."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

AILAB = [sys.executable, "-m", "ailab"]


def init_repo(tmp_path: Path, *components: str) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "my-lab"
    repo.mkdir()
    (repo / "ailab.yaml").write_text(yaml.safe_dump({"ailab": {"discover_ollama": False}}))
    env = {**os.environ, "AILAB_CONFIG": str(repo / "ailab.yaml"), "AILAB_DATA_DIR": str(tmp_path / "data")}
    if components:
        subprocess.run(
            [*AILAB, "install", *components], env=env, check=True, capture_output=True, timeout=120
        )
    subprocess.run([*AILAB, "ci", "init", str(repo)], env=env, check=True, capture_output=True, timeout=60)
    return repo, env


def test_workflow_is_valid_for_github_actions(tmp_path):
    repo, _ = init_repo(tmp_path, "qdrant", "prometheus")
    workflow = repo / ".github" / "workflows" / "ailab.yml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    flow = yaml.safe_load(workflow.read_text())
    job = flow["jobs"]["check"]
    assert job["env"]["AILAB_CONFIG"] == "ailab.yaml"
    assert set(job["env"]["AILAB_COMPONENTS"].split()) == {"qdrant", "prometheus"}
    again = subprocess.run([*AILAB, "ci", "init", str(repo)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr


def test_workflow_steps_pass_locally(tmp_path):
    repo, env = init_repo(tmp_path, "qdrant")
    flow = yaml.safe_load((repo / ".github" / "workflows" / "ailab.yml").read_text())
    job = flow["jobs"]["check"]
    step_env = {**env, **{k: v for k, v in job["env"].items() if "${{" not in v}}
    step_env["AILAB_DATA_DIR"] = str(tmp_path / "ci-data")
    step_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    ran = 0
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            words = shlex.split(line)
            if not words or words[0] != "ailab":
                continue  # pip, docker, kubectl, helm: checked below with local validators
            command = " ".join(shlex.quote(w) for w in words).replace(
                "'$AILAB_COMPONENTS'", "$AILAB_COMPONENTS"
            )
            done = subprocess.run(
                command, shell=True, cwd=repo, env=step_env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
            ran += 1
    assert ran >= 4
    import compose_spec

    compose_spec.PyCompose.from_yaml((repo / "build" / "compose" / "docker-compose.yml").read_text())
    manifests = list((repo / "build" / "kubernetes" / "manifests").glob("*.yaml"))
    assert manifests


def test_workflow_builds_and_pushes_a_multi_arch_image(tmp_path):
    repo, _ = init_repo(tmp_path)
    flow = yaml.safe_load((repo / ".github" / "workflows" / "ailab.yml").read_text())
    image = flow["jobs"]["image"]
    assert image["needs"] == "check" and "hashFiles('Dockerfile')" in image["if"]
    build = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64" and build["with"]["push"] is True
    install = next(s for s in flow["jobs"]["check"]["steps"] if s.get("name") == "Install ailab")
    assert "local-ai-lab==" in install["run"]
