"""JupyterLab: notebooks with the lab as their OpenAI endpoint; runs natively from PyPI."""

from __future__ import annotations

from ailab.stack.catalog._common import GATEWAY, lab_key, lab_key_ref
from ailab.stack.model import (
    Backup,
    Component,
    EnvValue,
    Health,
    Native,
    NativeContext,
    Port,
    SecretRef,
    SecretSpec,
    Volume,
)


def _argv(ctx: NativeContext) -> list[str]:
    argv = [
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={ctx.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={ctx.data_dir}",
    ]
    if ctx.running_as_root:
        argv.append("--allow-root")
    return argv


_ENV: dict[str, EnvValue] = {
    "OPENAI_BASE_URL": GATEWAY,
    "OPENAI_API_KEY": lab_key_ref("jupyter"),
    # Read by jupyter-server; keeps the token off the command line (and out of `ps`).
    "JUPYTER_TOKEN": SecretRef("JUPYTER_TOKEN"),
}

COMPONENT = Component(
    name="jupyter",
    description="JupyterLab, OpenAI SDK pointed at the lab",
    image="quay.io/jupyter/minimal-notebook",
    tag="2025-03-24",
    phase=3,
    ports=(Port("http", 8888, host=8888),),
    volumes=(Volume("data", "/home/jovyan/work", "10Gi"),),
    env=dict(_ENV),
    secrets=(lab_key("jupyter"), SecretSpec("JUPYTER_TOKEN", "token", "JupyterLab login token")),
    health=Health("http", "/api", ("CMD", "curl", "-fsS", "http://127.0.0.1:8888/api"), 30),
    backup=Backup(paths=("/home/jovyan/work",)),
    depends_on=("ailab",),
    auth="own",
    native=Native("jupyter-lab", _argv, "/api", "pip install jupyterlab", dict(_ENV)),
)
