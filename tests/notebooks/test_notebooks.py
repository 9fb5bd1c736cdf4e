"""Every notebook in notebooks/ runs top to bottom (nbclient, one kernel each) against a live `ailab up`;
any error cell fails. Notebooks are committed without outputs and read the lab from the environment."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.notebooks.conftest import NOTEBOOKS, ROOT, NotebookLab

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 180


def test_at_least_ten_notebooks() -> None:
    assert len(PATHS) >= 10, [p.name for p in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_outputs_are_cleared_and_the_lab_comes_from_the_environment(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not cleared"
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        compile(cell.source, f"{path.name}[{i}]", "exec")  # also for a notebook the run below skips
    source = "\n".join(c.source for c in nb.cells)
    assert 'os.environ.get("OPENAI_BASE_URL"' in source and 'os.environ["OPENAI_API_KEY"]' in source
    assert "sk-" not in source.replace("sk-ailab-...", "").replace("sk-ailab-…", ""), "a key in a notebook"


def test_requirements_file_matches_the_notebooks_extra() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = (NOTEBOOKS / "requirements.txt").read_text().splitlines()
    pinned = sorted(line for line in lines if line and not line.startswith("#"))
    assert pinned == sorted(extra["notebooks"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extra["notebooks"]) <= set(extra["dev"]) | set(project["dependencies"])


def _env(lab: NotebookLab, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AILAB_", "OPENAI_"))}
    env.update(
        OPENAI_BASE_URL=f"{lab.url}/v1",
        OPENAI_API_KEY=lab.user_key,
        AILAB_ADMIN_KEY=lab.admin_key,
        MPLBACKEND="Agg",
        # An empty cache: a notebook that reached for tiktoken's tables would try to download them, and fail.
        TIKTOKEN_CACHE_DIR=str(tmp_path / "tiktoken"),
    )
    return env


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_without_error(path: Path, notebook_lab: NotebookLab, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_lab.workdir)}},
    )
    try:
        client.execute(env=_env(notebook_lab, tmp_path))  # raises CellExecutionError on an error cell
    finally:
        nbformat.write(nb, tmp_path / path.name)  # the executed copy, to read when a run fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_every_notebook_is_described_in_the_docs() -> None:
    text = (ROOT / "docs" / "notebooks.md").read_text()
    assert [p.stem for p in PATHS if f"| `{p.stem}` |" not in text] == []
