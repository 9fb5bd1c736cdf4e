"""`ailab backup` / `ailab restore` through the real Typer app: progress, --keep pruning, the --include-key
warning, last.json for doctor (failures too), dry run, and restoring over a lab that has state of its own."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ailab.cli import app
from ailab.ops.archive import verify_archive
from ailab.ops.backup import backup_dir, create_backup, read_last
from tests.ops.conftest import small_lab, tables, tree

runner = CliRunner()


def lab_args(loaded) -> list[str]:
    return ["--config", str(loaded.path), "--data-dir", str(loaded.data_dir)]


def test_backup_prints_progress_prunes_to_keep_and_warns_about_the_key(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path)
    for _ in range(3):
        out = runner.invoke(app, ["backup", "--keep", "2", "--include-key", *lab_args(loaded)])
        assert out.exit_code == 0, out.output
    assert "warning: this archive will hold the secret store's key" in out.stderr
    assert "  db/ailab.db" in out.stderr and "  key/secret.key" in out.stderr  # one line per member
    assert out.stdout.startswith("backup written: ")
    archives = sorted(backup_dir(loaded).glob("ailab-backup-*.tar.gz"))
    assert len(archives) == 2
    assert verify_archive(archives[-1]).key_included
    last = read_last(loaded)
    assert last is not None and last["ok"] and last["path"] == str(archives[-1]) and last["error"] is None


def test_config_sets_keep_and_key_and_quiet_hides_progress(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path, backup={"keep": 1, "include_key": True, "dir": str(tmp_path / "bk")})
    for _ in range(2):
        out = runner.invoke(app, ["backup", "--quiet", *lab_args(loaded)])
        assert out.exit_code == 0, out.output
    assert "warning: this archive will hold" in out.stderr and "db/ailab.db" not in out.stderr
    assert len(list((tmp_path / "bk").glob("ailab-backup-*.tar.gz"))) == 1
    assert json.loads((tmp_path / "bk" / "last.json").read_text())["ok"] is True


def test_a_failed_backup_is_recorded_for_doctor(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path)
    loaded.path.write_text("general_settings:\n  database_url: postgresql://ailab@127.0.0.1:1/none\n")
    out = runner.invoke(app, ["backup", *lab_args(loaded)])
    assert out.exit_code == 1 and "error: backup failed:" in out.stderr
    last = read_last(loaded)
    assert last is not None and last["ok"] is False and last["path"] is None and last["error"]
    assert not list(backup_dir(loaded).glob("*.tar.gz")) and not list(backup_dir(loaded).glob(".*"))


def test_restore_dry_run_then_over_a_lab_with_state_of_its_own(tmp_path: Path) -> None:
    src = small_lab(tmp_path, "src")
    archive = tmp_path / "a.tar.gz"
    assert runner.invoke(app, ["backup", "-o", str(archive), "--include-key", *lab_args(src)]).exit_code == 0
    dst = small_lab(tmp_path, "dst", secrets={"key_file": str(tmp_path / "src.key")})
    (dst.data_dir / "knowledge" / "mine.txt").write_text("replaced by the restore")
    before = tree(dst.data_dir)

    dry = runner.invoke(app, ["restore", str(archive), "--dry-run", *lab_args(dst)])
    assert dry.exit_code == 0, dry.output
    assert "verified, every checksum matches; nothing was changed" in dry.stdout
    assert tree(dst.data_dir) == before

    out = runner.invoke(app, ["restore", str(archive), *lab_args(dst)])
    assert out.exit_code == 0, out.output
    assert "the replaced state is kept in" in out.stdout
    assert tables(f"sqlite:///{dst.data_dir / 'ailab.db'}") == tables(
        f"sqlite:///{src.data_dir / 'ailab.db'}"
    )
    assert not (dst.data_dir / "knowledge" / "mine.txt").exists()
    assert (dst.data_dir / "master_key").stat().st_mode & 0o077 == 0
    assert (dst.data_dir / "restored-config" / "src.yaml").read_text() == src.path.read_text()
    previous = next(tmp_path.glob("dst.pre-restore-*"))
    index = json.loads((previous / "index.json").read_text())
    kept = {Path(p).name: previous / i for i, p in index.items()}
    assert (kept["knowledge"] / "mine.txt").read_text() == "replaced by the restore"


def test_restore_refusal_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really")
    out = runner.invoke(app, ["restore", str(bad), *lab_args(loaded)])
    assert out.exit_code == 1 and "error: restore refused:" in out.stderr and "damaged archive" in out.stderr


def test_with_the_vault_backend_the_archive_says_where_the_secrets_are(tmp_path: Path) -> None:
    loaded = small_lab(tmp_path, secrets={"backend": "vault", "vault_url": "http://127.0.0.1:8200"})
    manifest = create_backup(loaded, include_key=True).manifest
    assert not manifest.key_included and manifest.member("key/secret.key") is None
    assert any(n.startswith("secrets are in Vault (http://127.0.0.1:8200)") for n in manifest.notes)


def test_journal_segments_go_into_the_archive_and_come_back(tmp_path: Path) -> None:
    # A lab killed before its next start leaves usage rows only in its journal: a backup keeps them.
    loaded = small_lab(tmp_path)
    seg = loaded.data_dir / "ledger-journal" / "journal-4242-1.jsonl"
    seg.parent.mkdir(parents=True, exist_ok=True)
    seg.write_bytes(b'[1,"k",null,null,"gpt",null,null,null,"req-1",1,1,1,1,0,0,0,1,null,200,0,0,0]\n')
    archive = create_backup(loaded, include_key=True)
    assert archive.manifest.member("data/ledger-journal/journal-4242-1.jsonl") is not None
    seg.unlink()
    out = runner.invoke(app, ["restore", str(archive.path), *lab_args(loaded)])
    assert out.exit_code == 0, out.stderr
    assert seg.read_bytes().startswith(b'[1,"k"')
