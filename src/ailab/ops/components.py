"""Docker runtime: each running component's volumes and dumps, per its catalog `Backup` spec.

Backup runs `docker compose … exec -T <service> tar -C / -cf - <paths>` (and the spec's `dump` command,
e.g. `pg_dumpall`) with stdout streamed into `components/<name>/volumes.tar` / `dump.out`. Restore pipes
them back into the running service: `tar -C / -xf -`, and the dump into the tool that reads it (psql for
pg_dumpall). A component that is not running is reported, not guessed at.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ailab.ops.staging import Staging
from ailab.stack import Backup, compose_command, compose_dir

VOLUMES = "volumes.tar"
DUMP = "dump.out"


class ComponentError(RuntimeError):
    """A docker compose call failed; the message names the component and the command."""


@dataclass(frozen=True)
class Project:
    directory: Path
    services: list[str]

    @classmethod
    def find(cls, data_dir: Path) -> Project | None:
        directory = compose_dir(data_dir)
        path = directory / "docker-compose.yml"
        if not path.is_file():
            return None
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(directory, sorted((tree.get("services") or {}).keys()))

    def running(self) -> set[str]:
        cmd = compose_command(self.directory, "ps", "--services", "--status", "running")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ComponentError(f"`docker compose ps` failed: {proc.stderr.strip()[-300:]}")
        return {line.strip() for line in proc.stdout.splitlines() if line.strip()}

    def exec_to(self, service: str, argv: list[str], out: Path) -> None:
        cmd = compose_command(self.directory, "exec", "-T", service, *argv)
        with open(out, "wb") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise ComponentError(f"{service}: `{' '.join(argv)}` failed: {proc.stderr.decode()[-300:]}")

    def exec_from(self, service: str, argv: list[str], src: Path) -> None:
        cmd = compose_command(self.directory, "exec", "-T", service, *argv)
        with open(src, "rb") as fh:
            proc = subprocess.run(cmd, stdin=fh, capture_output=True, check=False)
        if proc.returncode != 0:
            raise ComponentError(f"{service}: `{' '.join(argv)}` failed: {proc.stderr.decode()[-300:]}")


def backup_specs(project: Project) -> dict[str, Backup]:
    from ailab.stack import component_catalog as catalog

    cat = catalog()
    specs = {name: cat[name].backup for name in project.services if name in cat}
    return {name: spec for name, spec in specs.items() if spec is not None and (spec.paths or spec.dump)}


def _ready(data_dir: Path) -> tuple[Project, set[str]] | None:
    project = Project.find(data_dir)
    if project is None:
        return None
    if shutil.which("docker") is None:
        raise ComponentError(
            f"a Docker Compose project is rendered at {project.directory} but the docker client is not "
            "installed: its components' volumes cannot be reached"
        )
    return project, project.running()


def backup_components(data_dir: Path, st: Staging) -> None:
    found = _ready(data_dir)
    if found is None:
        return
    project, running = found
    for name, spec in backup_specs(project).items():
        if name not in running:
            st.note(f"component {name} is not running: its volumes are not in this backup")
            continue
        st.progress(f"component {name}")
        if spec.paths:
            arc = f"components/{name}/{VOLUMES}"
            rel = [p.lstrip("/") or "." for p in spec.paths]
            project.exec_to(name, ["tar", "-C", "/", "-cf", "-", *rel], st.path(arc))
            st.commit(arc, "component-volumes")
        if spec.dump:
            arc = f"components/{name}/{DUMP}"
            project.exec_to(name, list(spec.dump), st.path(arc))
            st.commit(arc, "component-dump")


def restore_command(dump: tuple[str, ...]) -> list[str] | None:
    """The command that reads a dump back, by the tool that wrote it (None: unknown tool)."""
    if dump and dump[0] == "pg_dumpall":
        user = dump[dump.index("-U") + 1] if "-U" in dump[:-1] else "postgres"
        return ["psql", "-q", "-U", user, "-d", "postgres"]
    return None


def restore_components(data_dir: Path, staged: dict[str, dict[str, Path]]) -> tuple[list[str], list[str]]:
    """Pipe staged component members back; returns (done, skipped with the reason)."""
    if not staged:
        return [], []
    found = _ready(data_dir)
    if found is None:
        return [], [f"{name}: no Docker Compose project in the restored data dir" for name in sorted(staged)]
    project, running = found
    specs = backup_specs(project)
    done: list[str] = []
    skipped: list[str] = []
    for name, files in sorted(staged.items()):
        if name not in running:
            skipped.append(f"{name}: not running; start it (`ailab up --runtime docker`) and restore again")
            continue
        if VOLUMES in files:
            project.exec_from(name, ["tar", "-C", "/", "-xf", "-"], files[VOLUMES])
        if DUMP in files:
            cmd = restore_command(specs[name].dump) if name in specs else None
            if cmd is None:
                skipped.append(f"{name}: no known way to load its dump back")
                continue
            project.exec_from(name, cmd, files[DUMP])
        done.append(name)
    return done, skipped
