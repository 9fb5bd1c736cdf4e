"""OpenAI's official OpenAPI spec as test data: request samples built from its schemas, and validators for
the responses and stream chunks the gateway sends (../shared/specs/openai, MIT licence).

The spec mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; `jsonschema` ignores that keyword, so it is
rewritten to an explicit null alternative before validating.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_DIR = Path("/work/shared/specs/openai")
if not SPEC_DIR.exists():  # a checkout beside the shared folder
    SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai"
SUBSET = SPEC_DIR / "subset-chat-embeddings-models.json"


@functools.cache
def schemas() -> dict[str, Any]:
    with (SPEC_DIR / "openapi.yaml").open() as f:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec = yaml.load(f, Loader=loader)
    return {k: _nullable(v) for k, v in spec["components"]["schemas"].items()}


@functools.cache
def subset_schemas() -> dict[str, Any]:
    return {k: _nullable(v) for k, v in json.loads(SUBSET.read_text())["schemas"].items()}


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str) and not any(k in out for k in ("oneOf", "anyOf", "allOf")):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def validator(name: str, subset: bool = False) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": _all(subset)}}
    return jsonschema.Draft202012Validator(root)


def _all(subset: bool) -> dict[str, Any]:
    return subset_schemas() if subset else schemas()


def check(name: str, instance: Any, subset: bool = True) -> None:
    """Raise if `instance` does not match the named schema (responses: the subset the spec ships)."""
    errors = sorted(validator(name, subset).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise AssertionError(f"{name}: {'/'.join(map(str, e.path))}: {e.message}")


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def properties(name: str) -> dict[str, Any]:
    """A request schema's properties, merged over its allOf parts."""
    out: dict[str, Any] = {}

    def walk(s: dict[str, Any]) -> None:
        s = resolve(s)
        for part in s.get("allOf", ()):
            walk(part)
        out.update(s.get("properties", {}))

    walk(schemas()[name])
    return out


def alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null branches of a schema's oneOf/anyOf, flattened (each is one documented shape)."""
    schema = resolve(schema)
    branches = schema.get("oneOf") or schema.get("anyOf")
    if not branches:
        return [] if schema.get("type") == "null" else [schema]
    out: list[dict[str, Any]] = []
    for b in branches:
        out.extend(alternatives(b))
    return out


def sample(schema: dict[str, Any], full: bool = True) -> Any:
    """A value valid for `schema`: the first branch, every property (`full`) or only the required ones."""
    schema = resolve(schema)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part, full)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    alts = alternatives(schema)
    if not alts:
        return None
    s = alts[0]
    if s is not schema:
        return sample(s, full)
    return _sample_typed(s, full)


def _sample_typed(s: dict[str, Any], full: bool) -> Any:
    if "enum" in s:
        return next(v for v in s["enum"] if v is not None)
    kind = s.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in s:
        props = s.get("properties", {})
        keys = props if full else s.get("required", [])
        out = {k: sample(props[k], full) for k in keys if k in props}
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and extra and not props:
            out["50256"] = sample(extra, full)  # a map (metadata, logit_bias): one entry
        return out
    if kind == "array":
        return [sample(s.get("items", {"type": "string"}), full)] * max(1, s.get("minItems", 1))
    if kind == "string":
        return "https://example.com/cat.png" if s.get("format") == "uri" else "x"
    if kind == "integer":
        return max(1, s.get("minimum", 1)) if s.get("maximum", 2) >= 1 else s.get("minimum", 0)
    if kind == "number":
        return max(s.get("minimum", 0), min(s.get("maximum", 1), 0.5))
    if kind == "boolean":
        return True
    return {}


WRONG = (12345, "not-valid", True, {"unexpected": 1}, [1.5], 1.5)


def wrong_value(schema: dict[str, Any], name: str) -> Any:
    """A value of a type the schema does not allow (the first of WRONG that fails it), never null."""
    v = jsonschema.Draft202012Validator({**copy.deepcopy(schema), "components": {"schemas": schemas()}})
    if "$ref" in schema:
        v = jsonschema.Draft202012Validator({"$ref": schema["$ref"], "components": {"schemas": schemas()}})
    for candidate in WRONG:
        if not v.is_valid(candidate):
            return candidate
    raise AssertionError(f"no wrong value for {name}")
