"""`ailab install jupyter` ships the example notebooks and their requirements, and points them at the gateway
with a real key of the `stack` user: compose, Kubernetes (manifests and chart) and native."""

from __future__ import annotations

from pathlib import Path

import compose_spec
import kubernetes_validate
import yaml

from ailab.config import load_config
from ailab.stack.catalog import expand, select
from ailab.stack.catalog.jupyter import SHIPPED, notebook_files, shipped_requirements
from ailab.stack.compose import render_compose
from ailab.stack.helm import render_kubernetes
from ailab.stack.model import RenderContext
from ailab.stack.native.plan import build_plan
from ailab.stack.secrets import SERVICE_USER, open_stack_secrets, specs_for
from ailab.stack.state import StackState
from tests.stack.conftest import fake_secrets

REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _ctx() -> RenderContext:
    return RenderContext(select(expand(["jupyter"])))


def test_the_shipped_files_are_the_repository_notebooks() -> None:
    files = notebook_files()
    on_disk = {
        p.relative_to(REPO_NOTEBOOKS).as_posix(): p.read_text()
        for p in REPO_NOTEBOOKS.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.parts)
    }
    assert files == on_disk
    assert sum(name.endswith(".ipynb") for name in files) >= 10
    assert "data/retrieval-questions.jsonl" in files and "requirements.txt" in files
    assert "openai==3.57.0" in shipped_requirements()


def test_compose_mounts_the_notebooks_installs_their_requirements_and_wires_the_gateway(
    tmp_path: Path,
) -> None:
    ctx = _ctx()
    tree = render_compose(ctx, fake_secrets(ctx))
    tree.write(tmp_path)
    text = (tmp_path / "docker-compose.yml").read_text()
    compose_spec.PyCompose.from_yaml(text)
    svc = yaml.safe_load(text)["services"]["jupyter"]
    for rel, content in notebook_files().items():
        assert f"./config/jupyter/notebooks/{rel}:{SHIPPED}/{rel}:ro" in svc["volumes"]
        assert (tmp_path / "config" / "jupyter" / "notebooks" / rel).read_text() == content
    start = svc["command"][-1]
    assert f"pip install --quiet --no-cache-dir -r {SHIPPED}/requirements.txt" in start
    assert "cp -rn" in start and start.endswith("exec start-notebook.py")
    port = ctx.components["ailab"].port("http").number
    assert svc["environment"]["OPENAI_BASE_URL"] == f"http://ailab:{port}/v1"
    assert svc["environment"]["OPENAI_API_KEY"].startswith("${LAB_KEY_JUPYTER:?")


def test_kubernetes_ships_the_notebooks_in_a_config_map(tmp_path: Path) -> None:
    ctx = _ctx()
    tree = render_kubernetes(ctx, fake_secrets(ctx))
    tree.write(tmp_path)
    docs = [
        d
        for p in tmp_path.rglob("*.yaml")
        if "chart" not in p.parts
        for d in yaml.safe_load_all(p.read_text())
    ]
    docs = [d for d in docs if isinstance(d, dict) and d.get("kind")]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "jupyter-config")
    deploy = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "jupyter")
    files = notebook_files()
    assert {k.removeprefix("notebooks__").replace("__", "/"): v for k, v in config["data"].items()} == files
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for rel in files:
        assert mounts[f"{SHIPPED}/{rel}"]["readOnly"] is True
    assert "requirements.txt" in container["args"][-1]
    env = {e["name"]: e for e in container["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "LAB_KEY_JUPYTER"
    assert env["OPENAI_BASE_URL"]["value"].endswith("/v1")
    for doc in (config, deploy):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_native_copies_the_notebooks_and_gives_them_a_key_of_the_stack_user(tmp_path: Path) -> None:
    loaded = load_config(None, tmp_path / "data")
    with open_stack_secrets(loaded) as stack:
        secrets = stack.ensure(specs_for(select(expand(["jupyter"]))))
    plan = build_plan(loaded, StackState(installed=["ailab", "jupyter"]), secrets)
    if "jupyter" not in {s.name for s in plan.specs}:  # jupyter-lab is a dev dependency: always there in CI
        raise AssertionError(plan.skipped)
    spec = next(s for s in plan.specs if s.name == "jupyter")
    for rel, content in notebook_files().items():
        assert (Path(spec.cwd) / "notebooks" / rel).read_text() == content
    edited = Path(spec.cwd) / "notebooks" / "01-quickstart.ipynb"
    edited.write_text("{}")
    build_plan(loaded, StackState(installed=["ailab", "jupyter"]), secrets)
    assert edited.read_text() == "{}", "a user's edit was overwritten"
    assert spec.env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{loaded.config.ailab.port}/v1"
    from ailab.access.service import AccessService
    from ailab.server.state import open_database

    engine = open_database(loaded)
    try:
        access = AccessService.build(engine, loaded.config.access)
        key = access.keys.find(spec.env["OPENAI_API_KEY"])
        assert key is not None and key.name == "stack:LAB_KEY_JUPYTER"
        assert access.identity.user(key.user_id or "").username == SERVICE_USER
    finally:
        engine.dispose()


def test_ailab_install_jupyter_then_render_compose_ships_notebooks_and_a_real_key(tmp_path: Path) -> None:
    """Through the CLI, as a user runs it: the rendered project holds the notebooks, and .env the key."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    common = ["--data-dir", str(tmp_path / "data")]
    for args in (
        ["install", "jupyter", *common],
        ["render", "compose", "--out", str(tmp_path / "out"), *common],
    ):
        done = subprocess.run([sys.executable, "-m", "ailab", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    assert (out / "config/jupyter/notebooks/01-quickstart.ipynb").read_text() == notebook_files()[
        "01-quickstart.ipynb"
    ]
    dotenv = dict(line.split("=", 1) for line in (out / ".env").read_text().splitlines() if "=" in line)
    token = dotenv["LAB_KEY_JUPYTER"]
    assert token.startswith("sk-ailab-")
    loaded = load_config(None, tmp_path / "data")
    from ailab.access.service import AccessService
    from ailab.server.state import open_database

    engine = open_database(loaded)
    try:
        access = AccessService.build(engine, loaded.config.access)
        key = access.keys.find(token)
        assert key is not None and access.identity.user(key.user_id or "").username == SERVICE_USER
    finally:
        engine.dispose()
