"""A backup archive holds no provider key or master key in plain text: the config, the master key file and
the stack files are sealed with the lab's secret key, and restore opens them (or refuses, saying why)."""

from __future__ import annotations

import gzip
from pathlib import Path

import yaml

from ailab.config import load_config
from ailab.ops.backup import create_backup
from ailab.ops.restore import restore_archive
from tests.ops.conftest import small_lab

PROVIDER_KEY = "sk-provider-inline-6f1d2c3b4a5e"
CONFIG_MASTER = "sk-config-master-9a8b7c6d5e4f"


def _lab(tmp_path: Path):
    entry = {
        "model_name": "gpt",
        "litellm_params": {
            "model": "openai/gpt-4o-mini",
            "api_base": "http://127.0.0.1:9/v1",
            "api_key": PROVIDER_KEY,
        },
    }
    loaded = small_lab(tmp_path, model_list=[entry], general_settings={"master_key": CONFIG_MASTER})
    stack = loaded.data_dir / "stack" / "compose"
    stack.mkdir(parents=True)
    (stack / ".env").write_text("POSTGRES_PASSWORD=stack-generated-pw-77\n")
    return loaded


def _raw(archive: Path) -> bytes:
    packed = archive.read_bytes()
    return packed + gzip.decompress(packed)  # the compressed bytes and every byte of the tar inside


def test_the_archive_leaks_no_key_without_the_secret_key(tmp_path):
    loaded = _lab(tmp_path)
    result = create_backup(loaded, out=tmp_path / "b.tar.gz")
    raw = _raw(result.path)
    for secret in (PROVIDER_KEY, CONFIG_MASTER, "sk-master-file", "stack-generated-pw-77", "s3cret"):
        assert secret.encode() not in raw, secret
    assert {"config/small.yaml", "data/master_key"} <= set(result.manifest.sealed)
    assert any(p.startswith("data/stack/") for p in result.manifest.sealed)


def test_restore_decrypts_with_the_labs_key(tmp_path):
    loaded = _lab(tmp_path)
    archive = create_backup(loaded, out=tmp_path / "b.tar.gz").path
    target_cfg = tmp_path / "target.yaml"
    target_cfg.write_text(yaml.safe_dump({"secrets": {"key_file": str(tmp_path / "small.key")}}))
    target = load_config(target_cfg, tmp_path / "restored")
    restore_archive(archive, target)
    assert (target.data_dir / "master_key").read_text() == "sk-master-file\n"
    assert PROVIDER_KEY in (target.data_dir / "restored-config" / "small.yaml").read_text()
    assert "stack-generated-pw-77" in (target.data_dir / "stack" / "compose" / ".env").read_text()


def test_restore_without_the_key_keeps_the_targets_own_and_says_so(tmp_path, monkeypatch):
    import base64

    loaded = _lab(tmp_path)
    archive = create_backup(loaded, out=tmp_path / "b.tar.gz").path
    monkeypatch.setenv("AILAB_SECRET_KEY", base64.urlsafe_b64encode(b"\1" * 32).decode())  # another key
    target = load_config(None, tmp_path / "elsewhere")
    target.data_dir.mkdir()
    (target.data_dir / "master_key").write_text("sk-target-own\n")
    for dry_run in (True, False):
        report = restore_archive(archive, target, dry_run=dry_run)
        assert any("data/master_key" in p and "source lab's key" in p for p in report.problems)
    assert (target.data_dir / "master_key").read_text() == "sk-target-own\n"
    assert (target.data_dir / "ailab.db").exists()  # the rest is restored


def test_an_archive_with_its_key_restores_anywhere(tmp_path, monkeypatch):
    loaded = _lab(tmp_path)
    archive = create_backup(loaded, out=tmp_path / "b.tar.gz", include_key=True).path
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other-machine"))
    target = load_config(None, tmp_path / "fresh")
    restore_archive(archive, target)
    assert (target.data_dir / "master_key").read_text() == "sk-master-file\n"
