"""Docker runtime: each running component's volumes (and the postgres dump) per its catalog backup spec.

There is no Docker engine on the machines these tests run on, so a stand-in `docker` executable is put
first on PATH. It implements just what backup and restore call — `docker compose … ps --services
--status running` and `docker compose … exec -T SERVICE CMD…` — by running CMD locally against a folder
per service that plays the container's root (tar's `-C /` is pointed there; pg_dumpall and psql are
emulated with a file), and logs every call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from ailab.ops.archive import verify_archive
from ailab.ops.backup import create_backup
from ailab.ops.restore import restore_archive
from tests.ops.conftest import small_lab

FAKE_DOCKER = r"""#!{python}
import os, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
root = Path(os.environ["FAKE_DOCKER_ROOT"])
with open(root / "calls.log", "a") as log:
    log.write(" ".join(args) + "\n")
assert args[0] == "compose", args
rest = args[1:]
while rest and rest[0] in ("--project-directory", "--file", "--env-file"):
    rest = rest[2:]
if rest[:2] == ["ps", "--services"]:
    print("\n".join(os.environ.get("FAKE_DOCKER_RUNNING", "").split(",")))
    sys.exit(0)
assert rest[:2] == ["exec", "-T"], rest
service, cmd = rest[2], rest[3:]
box = root / service
box.mkdir(parents=True, exist_ok=True)
if cmd[0] == "tar":
    cmd = [str(box) if a == "/" else a for a in cmd]
    sys.exit(subprocess.call(cmd, cwd=box))
if cmd[0] == "pg_dumpall":
    sys.stdout.buffer.write((box / "dump.sql").read_bytes())
    sys.exit(0)
if cmd[0] == "psql":
    (box / "restored.sql").write_bytes(sys.stdin.buffer.read())
    sys.exit(0)
sys.exit(f"fake docker: unsupported command {{cmd}}")
"""

SERVICES = ["ailab", "grafana", "n8n", "open-webui", "postgres", "qdrant", "vault"]
RUNNING = ["ailab", "grafana", "open-webui", "postgres", "qdrant", "vault"]
VOLUME_FILES = {
    "open-webui": "app/backend/data/webui.db",
    "qdrant": "qdrant/storage/collections/c_1/segment.bin",
    "grafana": "var/lib/grafana/grafana.db",
    "vault": "vault/file/core/_keyring",
    "ailab": "data/ailab.db",
}


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(FAKE_DOCKER.format(python=sys.executable))
    exe.chmod(0o755)
    root = tmp_path / "containers"
    root.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_ROOT", str(root))
    monkeypatch.setenv("FAKE_DOCKER_RUNNING", ",".join(RUNNING))
    return root


def _compose_project(data_dir: Path) -> None:
    project = data_dir / "stack" / "compose"
    project.mkdir(parents=True)
    (project / "docker-compose.yml").write_text(yaml.safe_dump({"services": {s: {} for s in SERVICES}}))
    (project / ".env").write_text("POSTGRES_PASSWORD=x\n")


def test_component_volumes_and_dumps_round_trip(tmp_path: Path, docker: Path) -> None:
    for service, rel in VOLUME_FILES.items():
        (docker / service / rel).parent.mkdir(parents=True)
        (docker / service / rel).write_bytes(f"{service} data".encode())
    (docker / "postgres").mkdir()
    (docker / "postgres" / "dump.sql").write_text("CREATE DATABASE dify;\n")
    src = small_lab(tmp_path, "src")
    _compose_project(src.data_dir)

    archive = create_backup(src, out=tmp_path / "d.tar.gz").path
    manifest = verify_archive(archive)
    kinds = {m.path: m.kind for m in manifest.members}
    for service in VOLUME_FILES:
        assert kinds[f"components/{service}/volumes.tar"] == "component-volumes"
    assert kinds["components/postgres/dump.out"] == "component-dump"
    assert "data/stack/compose/docker-compose.yml" in kinds
    assert any("component n8n is not running" in n for n in manifest.notes)
    calls = (docker / "calls.log").read_text()
    assert "exec -T open-webui tar -C / -cf - app/backend/data" in calls
    assert "exec -T postgres pg_dumpall -U ailab" in calls

    for service in VOLUME_FILES:  # fresh, empty volumes
        for path in sorted((docker / service).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    # the same secret key as the source (its config and stack files are sealed with it)
    report = restore_archive(
        archive, small_lab(tmp_path, "dst", secrets={"key_file": str(tmp_path / "src.key")})
    )
    assert not report.problems, report.problems
    for service, rel in VOLUME_FILES.items():
        assert (docker / service / rel).read_bytes() == f"{service} data".encode()
    assert (docker / "postgres" / "restored.sql").read_text() == "CREATE DATABASE dify;\n"
    assert "exec -T postgres psql -q -U ailab -d postgres" in (docker / "calls.log").read_text()


def test_a_stopped_component_is_reported_not_guessed(tmp_path: Path, docker: Path, monkeypatch) -> None:
    (docker / "grafana" / "var/lib/grafana").mkdir(parents=True)
    (docker / "grafana" / "var/lib/grafana" / "grafana.db").write_text("g")
    src = small_lab(tmp_path, "src")
    _compose_project(src.data_dir)
    monkeypatch.setenv("FAKE_DOCKER_RUNNING", "grafana")
    archive = create_backup(src, out=tmp_path / "d.tar.gz").path
    monkeypatch.setenv("FAKE_DOCKER_RUNNING", "")
    # the same secret key as the source (its config and stack files are sealed with it)
    report = restore_archive(
        archive, small_lab(tmp_path, "dst", secrets={"key_file": str(tmp_path / "src.key")})
    )
    assert report.problems == [
        "grafana: not running; start it (`ailab up --runtime docker`) and restore again"
    ]
