"""Find `os.environ/NAME` references in a config file's text and rewrite them to `secret/NAME` in place.

Works on the YAML node tree's source positions rather than on parsed data, so the rest of the file
(comments, quoting, order, blank lines) is kept byte for byte. Only model API keys are movable: that is
the one place the gateway resolves `secret/NAME` (a master key or a Vault token read from the store
would be circular or unsupported), so references elsewhere are reported and left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import yaml

ENV_REF = "os.environ/"
SECRET_REF = "secret/"
_STR_TAG = "tag:yaml.org,2002:str"
NodePath = tuple[str | int, ...]


@dataclass(frozen=True)
class EnvRef:
    name: str
    path: str  # dotted, e.g. model_list[0].litellm_params.api_key
    start: int  # character offsets of the scalar in the source text
    end: int
    movable: bool


def movable_path(path: NodePath) -> bool:
    return (
        len(path) == 4
        and path[0] == "model_list"
        and isinstance(path[1], int)
        and path[2:] == ("litellm_params", "api_key")
    )


def dotted(path: NodePath) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def find_env_refs(text: str) -> list[EnvRef]:
    """Every `os.environ/NAME` string scalar, in file order. Raises yaml.YAMLError on invalid YAML."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return []
    # An anchored scalar reused through aliases is one node with several paths: movable only if every
    # use is an API key, since rewriting its single source position changes all of them.
    paths: dict[int, tuple[yaml.ScalarNode, list[NodePath]]] = {}
    for node, path in _walk(root, ()):
        paths.setdefault(id(node), (node, []))[1].append(path)
    refs = [
        EnvRef(
            name=node.value[len(ENV_REF) :],
            path=", ".join(dotted(p) for p in found),
            start=node.start_mark.index,
            end=node.end_mark.index,
            movable=all(movable_path(p) for p in found),
        )
        for node, found in paths.values()
    ]
    return sorted(refs, key=lambda r: r.start)


def _walk(node: yaml.Node, path: NodePath) -> Iterator[tuple[yaml.ScalarNode, NodePath]]:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG and isinstance(node.value, str) and node.value.startswith(ENV_REF):
            yield node, path
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            label = key.value if isinstance(key, yaml.ScalarNode) else "?"
            yield from _walk(value, (*path, label))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, (*path, i))


def rewrite(text: str, refs: list[EnvRef]) -> tuple[str, list[EnvRef]]:
    """Replace each ref's token by `secret/NAME`; return the new text and the refs that could not be
    rewritten (a token spelled with escapes inside a double-quoted scalar, say)."""
    failed: list[EnvRef] = []
    for ref in sorted(refs, key=lambda r: r.start, reverse=True):  # from the end: offsets stay valid
        span = text[ref.start : ref.end]
        token = ENV_REF + ref.name
        if token not in span:
            failed.append(ref)
            continue
        text = text[: ref.start] + span.replace(token, SECRET_REF + ref.name, 1) + text[ref.end :]
    return text, sorted(failed, key=lambda r: r.start)
