"""What every renderer shares: the render context from install state, config files, output trees."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ailab.stack.model import Component, ConfigFile, RenderContext


@dataclass
class Tree:
    """Files to write: relative path -> (text, mode). Secret-bearing files get 0600."""

    files: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, path: str, text: str, mode: int = 0o644) -> None:
        self.files[path] = (text, mode)

    def write(self, out: Path) -> list[Path]:
        written = []
        for rel, (text, mode) in sorted(self.files.items()):
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            # Created with its final mode, so a secret is never readable by others even briefly.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
            written.append(path)
        return written


def config_files(comp: Component, ctx: RenderContext) -> list[ConfigFile]:
    return comp.files(ctx) if comp.files is not None else []


def image_for(comp: Component, gpu: str) -> str:
    variant = comp.gpu_variants.get(gpu) if comp.gpu_variants else None
    suffix = variant.image_suffix if variant else ""
    return f"{comp.image}:{comp.tag}{suffix}"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared sub-objects are written out in full: anchors confuse readers and templates


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, width=1000)


def dump_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_NoAliases, sort_keys=False, width=1000)
