"""Every check names a runbook that exists; every runbook belongs to a check and is in the index."""

from __future__ import annotations

import re
from pathlib import Path

from ailab.ops.doctor import all_checks

ROOT = Path(__file__).resolve().parents[3]
RUNBOOKS = ROOT / "docs" / "runbooks"


def test_every_check_has_its_runbook_and_every_runbook_a_check():
    checks = all_checks()
    assert len(checks) >= 18
    named = {c.runbook for c in checks}
    assert len(named) == len(checks), "two checks share a runbook"
    for c in checks:
        assert (ROOT / c.runbook).is_file(), f"{c.name}: {c.runbook} is missing"
    files = {f"docs/runbooks/{p.name}" for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert files == named, f"runbooks without a check: {sorted(files - named)}"


def test_each_runbook_has_symptoms_the_check_command_and_fixes():
    for c in all_checks():
        text = (ROOT / c.runbook).read_text()
        assert text.startswith("# ")
        assert f"ailab doctor --only {c.name}" in text, c.runbook
        assert "## Symptoms" in text and "## Causes and fixes" in text, c.runbook


def test_index_lists_every_runbook_and_its_links_resolve():
    index = (RUNBOOKS / "README.md").read_text()
    for c in all_checks():
        assert f"`{c.name}`" in index and f"({Path(c.runbook).name})" in index, c.name
    for path in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} links to missing {target}"


def test_the_seeds_common_issues_each_have_a_runbook():
    titles = {p.read_text().splitlines()[0].lower() for p in RUNBOOKS.glob("*.md")}
    for issue in (
        "grafana shows no metrics",
        "qdrant connection failed",
        "cost data missing",
        "routing errors",
        "dify apps not working",
        "ci failing",
        "jupyter kernels not starting",
        "vs code server unreachable",
        "vector db migration problems",
        "vault sealed",
        "rbac denials",
        "public access blocked",
    ):
        assert any(issue in t for t in titles), issue
