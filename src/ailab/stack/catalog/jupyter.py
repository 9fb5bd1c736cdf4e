"""JupyterLab: the lab's example notebooks, with the lab as their OpenAI endpoint; runs natively from PyPI.

The notebooks (`notebooks/` in the repository, `ailab/notebooks/` in the package) ship with the component:
mounted read-only and copied once into the work volume (so edits survive restarts and upgrades never
overwrite them), with their pinned requirements installed into the image at start. Natively they are copied
into JupyterLab's root and run on the lab's own environment (`pip install 'local-ai-lab[notebooks]'`).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ailab.stack.catalog._common import GATEWAY, lab_key, lab_key_ref
from ailab.stack.model import (
    Backup,
    Component,
    ConfigFile,
    EnvValue,
    Health,
    Native,
    NativeContext,
    Port,
    RenderContext,
    SecretRef,
    SecretSpec,
    Volume,
)

WORK = "/home/jovyan/work"
SHIPPED = "/opt/ailab/notebooks"  # read-only mounts of the shipped notebooks
NOTEBOOKS_DIR = "notebooks"  # under the work volume (and JupyterLab's native root)
REQUIREMENTS = "requirements.txt"


def notebook_sources() -> Traversable:
    return resources.files("ailab") / "notebooks"


def notebook_files() -> dict[str, str]:
    """Every shipped file (notebooks, requirements, data) by its path relative to the notebooks folder."""
    out: dict[str, str] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name.startswith((".", "_")):
                continue  # checkpoints, caches
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            else:
                out[prefix + child.name] = child.read_text(encoding="utf-8")

    root = notebook_sources()
    if root.is_dir():
        walk(root, "")
    return out


def _files(ctx: RenderContext) -> list[ConfigFile]:
    return [
        ConfigFile(f"notebooks/{rel}", f"{SHIPPED}/{rel}", text) for rel, text in notebook_files().items()
    ]


# The image's entrypoint (tini) stays; this replaces its default command. `cp -n` keeps a user's edits.
_START = (
    f"pip install --quiet --no-cache-dir -r {SHIPPED}/{REQUIREMENTS}"
    f" && mkdir -p {WORK}/{NOTEBOOKS_DIR} && cp -rn {SHIPPED}/. {WORK}/{NOTEBOOKS_DIR}/"
    " && exec start-notebook.py"
)


def copy_notebooks(root: Path) -> None:
    """Native: the notebooks into JupyterLab's root, leaving files that are already there alone."""
    target = root / NOTEBOOKS_DIR
    for rel, text in notebook_files().items():
        path = target / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


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
    # Read by the OpenAI SDK (and every notebook): the gateway, with a key of the lab's `stack` user.
    "OPENAI_BASE_URL": GATEWAY,
    "OPENAI_API_KEY": lab_key_ref("jupyter"),
    # Read by jupyter-server; keeps the token off the command line (and out of `ps`).
    "JUPYTER_TOKEN": SecretRef("JUPYTER_TOKEN"),
}

COMPONENT = Component(
    name="jupyter",
    description="JupyterLab with the lab's example notebooks, OpenAI SDK pointed at the lab",
    image="quay.io/jupyter/minimal-notebook",
    tag="2025-03-24",
    phase=3,
    ports=(Port("http", 8888, host=8888),),
    volumes=(Volume("data", WORK, "10Gi"),),
    env=dict(_ENV),
    secrets=(lab_key("jupyter"), SecretSpec("JUPYTER_TOKEN", "token", "JupyterLab login token")),
    # The first start installs the notebooks' requirements before JupyterLab answers.
    health=Health("http", "/api", ("CMD", "curl", "-fsS", "http://127.0.0.1:8888/api"), 120),
    backup=Backup(paths=(WORK,)),
    depends_on=("ailab",),
    command=("bash", "-c", _START),
    auth="own",
    native=Native(
        "jupyter-lab", _argv, "/api", "pip install 'local-ai-lab[notebooks]' jupyterlab", dict(_ENV)
    ),
    files=_files,
)


def shipped_requirements() -> list[str]:
    """The pinned requirements the component installs (for docs and tests)."""
    text = notebook_files().get(REQUIREMENTS, "")
    return [line for line in text.splitlines() if line and not line.startswith("#")]
