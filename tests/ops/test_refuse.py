"""Restore checks everything before touching anything: a damaged, truncated, incomplete, foreign or
newer-schema archive, or a running lab, is refused with the reason, and the target stays as it was."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ailab.ops.archive import ArchiveError, verify_archive
from ailab.ops.backup import create_backup
from ailab.ops.restore import RestoreError, restore_archive
from ailab.ops.runfile import write_runfile
from tests.ops.conftest import small_lab, tree

Members = list[tuple[tarfile.TarInfo, bytes]]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("source")
    return create_backup(small_lab(tmp), out=tmp / "good.tar.gz").path


@pytest.fixture
def target(tmp_path: Path, archive: Path):
    """A lab with state of its own (a restore of the good archive plus a marker file)."""
    loaded = small_lab(tmp_path, "target")
    (loaded.data_dir / "knowledge" / "mine.txt").write_text("the target's own file")
    before = tree(loaded.data_dir)
    yield loaded
    assert tree(loaded.data_dir) == before, "the target was modified"
    assert not list(tmp_path.glob(".target.restore-*")), "a staging folder was left behind"


def repack(src: Path, dst: Path, change: Callable[[Members], Members]) -> Path:
    with tarfile.open(src, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(dst, "w:gz") as tar:
        for info, data in change(members):
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


def edit_manifest(edit: Callable[[dict], None]) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        info, raw = members[0]
        manifest = json.loads(raw)
        edit(manifest)
        return [(info, json.dumps(manifest).encode()), *members[1:]]

    return change


def refused(path: Path, loaded, match: str) -> None:
    with pytest.raises(ArchiveError, match=match):
        verify_archive(path)
    with pytest.raises(ArchiveError, match=match):
        restore_archive(path, loaded)


def test_the_good_archive_verifies(archive: Path) -> None:
    manifest = verify_archive(archive)
    paths = {m.path for m in manifest.members}
    assert {"db/ailab.db", "data/master_key", "data/knowledge/catalog.sqlite", "config/small.yaml"} <= paths
    assert manifest.database == "sqlite" and "secrets_0001_local_store" in manifest.migrations
    assert not manifest.key_included and any("key is not in this archive" in n for n in manifest.notes)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
    assert archive.stat().st_mode & 0o077 == 0  # it holds the master key: owner only


@pytest.mark.parametrize("where", [0.5, 0.9, -3], ids=["middle", "late", "gzip-trailer"])
def test_one_flipped_byte_in_the_file_is_refused(archive: Path, target, tmp_path: Path, where: float) -> None:
    raw = bytearray(archive.read_bytes())
    at = int(len(raw) * where) if where > 0 else len(raw) + int(where)
    raw[at] ^= 0x01
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(bytes(raw))
    refused(bad, target, "damaged")


def test_one_flipped_byte_in_a_member_is_refused_naming_it(archive: Path, target, tmp_path: Path) -> None:
    def flip(members: Members) -> Members:
        out = []
        for info, data in members:
            if info.name == "db/ailab.db":
                data = data[:100] + bytes([data[100] ^ 0x01]) + data[101:]
            out.append((info, data))
        return out

    refused(
        repack(archive, tmp_path / "member.tar.gz", flip), target, r"member db/ailab\.db is damaged \(sha256"
    )


@pytest.mark.parametrize("keep", [0.6, -1], ids=["60%", "last-byte"])
def test_a_truncated_archive_is_refused(archive: Path, target, tmp_path: Path, keep: float) -> None:
    raw = archive.read_bytes()
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(raw[: int(len(raw) * keep) if keep > 0 else len(raw) + int(keep)])
    refused(bad, target, "truncated archive: the file ends early")


def test_an_archive_cut_at_a_member_boundary_is_refused(archive: Path, target, tmp_path: Path) -> None:
    bad = repack(archive, tmp_path / "short.tar.gz", lambda ms: ms[:-1])
    refused(bad, target, "listed in the manifest but missing")


def test_an_archive_from_a_newer_schema_is_refused(archive: Path, target, tmp_path: Path) -> None:
    def newer(m: dict) -> None:
        m["schema"]["migrations"] += ["ledger_9999_future", "access_9999_future"]
        m["lab_version"] = "9.0.0"

    bad = repack(archive, tmp_path / "newer.tar.gz", edit_manifest(newer))
    refused(
        bad,
        target,
        "newer schema: migrations ledger_9999_future, access_9999_future unknown to ailab .*upgrade ailab first",
    )


def test_a_newer_archive_format_is_refused(archive: Path, target, tmp_path: Path) -> None:
    bad = repack(archive, tmp_path / "format.tar.gz", edit_manifest(lambda m: m.update(format=2)))
    refused(bad, target, "archive format 2 is newer")


def test_an_archive_without_manifest_is_refused(archive: Path, target, tmp_path: Path) -> None:
    bad = repack(archive, tmp_path / "nomanifest.tar.gz", lambda ms: ms[1:])
    refused(bad, target, "not an ailab backup: manifest.json is missing")


def test_a_member_not_in_the_manifest_is_refused(archive: Path, target, tmp_path: Path) -> None:
    def extra(members: Members) -> Members:
        return [*members, (tarfile.TarInfo("data/intruder"), b"x")]

    refused(repack(archive, tmp_path / "extra.tar.gz", extra), target, "member data/intruder is not listed")


def test_not_an_archive_at_all(target, tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(b"just some text, not an archive")
    refused(plain, target, "damaged archive")
    plain.write_bytes(gzip.compress(b"hello"))
    refused(plain, target, "truncated archive")
    refused(tmp_path / "absent.tar.gz", target, "no such file")


def test_a_running_lab_is_refused(archive: Path, target) -> None:
    write_runfile(target.data_dir, "127.0.0.1", 1)  # this test process is alive: it "serves"
    try:
        with pytest.raises(RestoreError, match=rf"a lab is running on .* \(pid {os.getpid()}.*stop it first"):
            restore_archive(archive, target)
    finally:
        (target.data_dir / "run" / "lab.json").unlink()
        (target.data_dir / "run" / "last_version").unlink(missing_ok=True)
        (target.data_dir / "run").rmdir()


def test_a_sqlite_archive_is_refused_by_a_postgresql_lab(archive: Path, tmp_path: Path) -> None:
    loaded = small_lab(tmp_path, "pgtarget")
    loaded.config.general_settings.database_url = "postgresql://ailab@127.0.0.1:1/none"
    before = tree(loaded.data_dir)
    with pytest.raises(RestoreError, match="holds a SQLite database but the target lab uses PostgreSQL"):
        restore_archive(archive, loaded)
    assert tree(loaded.data_dir) == before


def test_dry_run_verifies_and_changes_nothing(archive: Path, target) -> None:
    report = restore_archive(archive, target, dry_run=True)
    assert report.dry_run and any(line.startswith("sqlite: 1 file") for line in report.actions)
    assert any("replacing" in line and "knowledge" in line for line in report.actions)


def test_an_included_key_that_differs_from_the_targets_is_refused(tmp_path: Path, monkeypatch) -> None:
    src = small_lab(tmp_path, "withkey")
    archive = create_backup(src, out=tmp_path / "k.tar.gz", include_key=True).path
    target = small_lab(tmp_path, "other")  # has a key file of its own (other.key)
    before = tree(target.data_dir), (tmp_path / "other.key").read_bytes()
    for dry_run in (True, False):
        with pytest.raises(RestoreError, match=r"other\.key holds another secret key than the archive's"):
            restore_archive(archive, target, dry_run=dry_run)
    monkeypatch.setenv("AILAB_SECRET_KEY", base64.urlsafe_b64encode(b"z" * 32).decode())
    with pytest.raises(RestoreError, match="AILAB_SECRET_KEY holds another key than the archive's"):
        restore_archive(archive, target, dry_run=True)
    assert (tree(target.data_dir), (tmp_path / "other.key").read_bytes()) == before


def test_a_flipped_byte_anywhere_is_refused(archive: Path, tmp_path: Path) -> None:
    # Deflate ignores some bits and gzip's CRC does not cover its header: the archive's trailer catches those.
    from ailab.ops.archive import TRAILER_SIZE

    raw = archive.read_bytes()
    n = len(raw)
    edges = [*range(24), *range(n - TRAILER_SIZE - 24, n)]  # gzip headers, the tar's end, the trailer
    for at in sorted({*range(0, n, max(1, n // 150)), *edges}):
        bad = bytearray(raw)
        bad[at] ^= 0x01
        path = tmp_path / "flipped.tar.gz"
        path.write_bytes(bytes(bad))
        with pytest.raises(ArchiveError, match=r"damaged|truncated|not a gzip|manifest"):
            verify_archive(path)


def test_standard_tools_read_the_archive(archive: Path, tmp_path: Path) -> None:
    import subprocess

    listed = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines()[0] == "manifest.json"
