"""docs/stack.md and the Makefile cannot drift from the catalog."""

from __future__ import annotations

from pathlib import Path

from ailab.stack.catalog import catalog

ROOT = Path(__file__).resolve().parents[2]


def test_every_component_and_make_target_is_documented() -> None:
    doc = (ROOT / "docs" / "stack.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for comp in catalog().values():
        assert comp.name in doc, comp.name
        own = comp.image == "ghcr.io/local-ai-lab/ailab"  # the lab's image: its tag is the lab's version
        assert comp.tag in doc or own, f"{comp.name}: tag {comp.tag} not in docs/stack.md"
    targets = [
        "install-monitoring",
        "install-qdrant",
        "install-cost-tracking",
        "install-litellm",
        "install-dify",
        "setup-cicd",
        "install-jupyter",
        "install-vscode",
        "install-advanced-vectordb",
        "install-vault",
        "setup-multiuser",
        "setup-public-access",
        "export-kubernetes",
        "backup",
        *(f"install-all-phase{n}" for n in range(1, 5)),
    ]
    for target in targets:
        assert f"\n{target}" in makefile or f" {target}" in makefile, target
        assert target in doc or target.startswith("install-all-phase"), target
