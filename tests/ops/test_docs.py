"""docs/operations.md, "Backup and restore": its config example loads, the commands and options it shows
exist, and every member kind a backup writes is in its table."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ailab.cli import app
from ailab.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def section() -> str:
    text = DOC.read_text()
    return text[text.index("## Backup and restore") :]


def test_the_schedule_example_loads_without_warnings(tmp_path: Path) -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", section(), flags=re.S)
    (tmp_path / "ailab.yaml").write_text(block)
    loaded = load_config(tmp_path / "ailab.yaml", tmp_path / "data")
    assert loaded.warnings == [] and loaded.config.backup.schedule == "0 3 * * *"


def test_the_commands_shown_exist() -> None:
    runner = CliRunner()
    backup = runner.invoke(app, ["backup", "--help"]).stdout
    restore = runner.invoke(app, ["restore", "--help"]).stdout
    for option in ("--out", "--keep", "--include-key", "--quiet"):
        assert option in backup
    assert "--dry-run" in restore
    for line in re.findall(r"```sh\n(.*?)```", section(), flags=re.S)[0].splitlines():
        words = line.split("#")[0].split()
        assert words[:2] in (["ailab", "backup"], ["ailab", "restore"]), line
        assert all(w in backup + restore for w in words[2:] if w.startswith("--")), line


def test_every_member_kind_is_documented() -> None:
    text = section()
    for prefix in (
        "db/ailab.db",
        "db/ailab.pgdump",
        "data/master_key",
        "data/knowledge/catalog.sqlite",
        "data/knowledge/embedded/",
        "stores/qdrant-local/",
        "stores/milvus-lite/",
        "qdrant-snapshots/",
        "data/knowledge/uploads/",
        "data/stack/",
        "config/",
        "key/secret.key",
        "components/<name>/volumes.tar",
        "dump.out",
    ):
        assert f"`{prefix}" in text or prefix in text, prefix
