"""Find and validate apps: `apps:` in ailab.yaml (a list, or a mapping of name to app) and one YAML file
per app in the apps folder (`apps_dir`, default `<config dir>/apps`). Every problem names its file and
field; nothing is dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ailab.apps.models import AppSpec
from ailab.config import LoadedConfig

DEFAULT_DIR = "apps"


@dataclass(frozen=True)
class Problem:
    where: str  # the file (and its place in ailab.yaml)
    field: str  # dotted path inside the app, "" for the whole document
    message: str

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"
        )


@dataclass
class AppSet:
    apps: dict[str, AppSpec] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # app name -> where it was declared
    problems: list[Problem] = field(default_factory=list)

    def add(self, spec: AppSpec, where: str) -> None:
        if spec.name in self.apps:
            self.problems.append(
                Problem(where, "name", f"app {spec.name!r} is already declared in {self.sources[spec.name]}")
            )
            return
        self.apps[spec.name] = spec
        self.sources[spec.name] = where


def apps_dir(loaded: LoadedConfig) -> Path:
    cfg = loaded.config
    base = loaded.path.parent if loaded.path else Path.cwd()
    configured = getattr(cfg, "apps_dir", None)
    folder = Path(configured) if configured else Path(DEFAULT_DIR)
    return folder if folder.is_absolute() else base / folder


def load_apps(loaded: LoadedConfig) -> AppSet:
    out = AppSet()
    where = str(loaded.path) if loaded.path else "ailab.yaml"
    for label, raw in _config_entries(getattr(loaded.config, "apps", None)):
        _parse_into(out, raw, f"{where}: {label}", None)
    folder = apps_dir(loaded)
    if folder.is_dir():
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            _load_file(out, path)
    return out


def load_files(paths: list[Path]) -> AppSet:
    out = AppSet()
    for path in paths:
        _load_file(out, path)
    return out


def _config_entries(raw: Any) -> list[tuple[str, Any]]:
    if not raw:
        return []
    if isinstance(raw, dict):  # name -> app
        return [
            (f"apps.{name}", {"name": name, **(v or {})} if isinstance(v, dict) else v)
            for name, v in raw.items()
        ]
    if isinstance(raw, list):
        return [(f"apps[{i}]", v) for i, v in enumerate(raw)]
    return [("apps", raw)]


def _load_file(out: AppSet, path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        out.problems.append(Problem(str(path), "", f"cannot read: {exc.strerror}"))
        return
    except yaml.YAMLError as exc:
        out.problems.append(Problem(str(path), "", f"not valid YAML: {exc}"))
        return
    _parse_into(out, data, str(path), path.stem)


def _parse_into(out: AppSet, raw: Any, where: str, default_name: str | None) -> None:
    if not isinstance(raw, dict):
        out.problems.append(Problem(where, "", f"an app must be a mapping, got {type(raw).__name__}"))
        return
    if default_name is not None and "name" not in raw:
        raw = {"name": default_name, **raw}
    try:
        spec = AppSpec.model_validate(raw)
    except ValidationError as exc:
        out.problems.extend(validation_problems(where, exc))
        return
    out.add(spec, where)


def validation_problems(where: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(Problem(where, loc, msg))
    return problems


def cross_check(
    apps: AppSet, groups: set[str], collections: set[str] | None, projects: set[str] | None
) -> list[Problem]:
    """References a running lab can check: model groups, collections, owner projects (None: unknown)."""
    found = []
    for name, spec in apps.apps.items():
        where = apps.sources[name]
        if spec.model not in groups:
            found.append(Problem(where, "model", f"model group {spec.model!r} is not served by this lab"))
        if spec.knowledge is not None and collections is not None:
            for i, coll in enumerate(spec.knowledge.collections):
                if coll not in collections:
                    found.append(
                        Problem(where, f"knowledge.collections.{i}", f"collection {coll!r} does not exist")
                    )
        if spec.project is not None and projects is not None and spec.project not in projects:
            found.append(Problem(where, "project", f"project {spec.project!r} does not exist"))
    return found


def inlined(raw: dict[str, Any], loaded: LoadedConfig) -> dict[str, Any]:
    """The config as written, with the apps folder's files moved under `apps:` (a container gets the
    config file, not the folder next to it). Files that do not parse stay out: the lab reports them."""
    folder = apps_dir(loaded)
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    out = {k: v for k, v in raw.items() if k != "apps_dir"}
    given = out.get("apps") or []
    entries = [{"name": n, **v} for n, v in given.items()] if isinstance(given, dict) else list(given)
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            entries.append({"name": path.stem, **data})
    if entries:
        out["apps"] = entries
    return out
