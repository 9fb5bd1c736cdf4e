"""What CI checks without a running lab: the config loads cleanly, the stack renders for Compose and
Kubernetes and what it renders parses (`ailab ci init` runs `ailab doctor --only config,ci`)."""

from __future__ import annotations

import json

import yaml

from ailab.gateway import build_deployments, default_registry
from ailab.ops.doctor.base import Outcome, check, fail, passed, warn
from ailab.ops.doctor.context import DoctorContext


@check("config", "ailab.yaml loads without warnings and every model entry is served", "config-invalid")
def config_check(ctx: DoctorContext) -> Outcome:
    where = ctx.loaded.path or "defaults (no ailab.yaml)"
    skipped: list[str] = []
    build_deployments(ctx.config, default_registry(), warn=skipped.append)
    problems = [*ctx.loaded.warnings, *skipped]
    if problems:
        return warn(
            f"{where} loads with {len(problems)} warning(s): {'; '.join(problems)}",
            "fix or remove the keys and entries named: a typo is a setting silently not applied",
        )
    return passed(f"{where} loads without warnings ({len(ctx.config.model_list)} model entries)")


# -- CI failing -----------------------------------------------------------------------------------------


def validate_tree(files: dict[str, tuple[str, int]]) -> list[str]:
    """Every YAML / JSON file of a rendered tree parses; compose files pass the Compose spec if the
    validator (PyPI compose-spec, a dev extra) is installed."""
    problems = []
    for path, (text, _) in sorted(files.items()):
        try:
            if path.endswith((".yml", ".yaml")) and "templates/" not in path:
                list(yaml.safe_load_all(text))
            elif path.endswith(".json"):
                json.loads(text)
        except (yaml.YAMLError, ValueError) as exc:
            problems.append(f"{path}: {str(exc).splitlines()[0]}")
        if path.endswith("docker-compose.yml"):
            problems.extend(_compose_spec(path, text))
    return problems


def _compose_spec(path: str, text: str) -> list[str]:
    try:
        import compose_spec
    except ImportError:
        return []
    try:
        compose_spec.PyCompose.from_yaml(text)
    except Exception as exc:  # the validator raises its own error types; the message is the finding
        return [f"{path}: {str(exc).splitlines()[0]}"]
    return []


@check("ci", "The config loads cleanly and the stack renders for compose and Kubernetes", "ci-failing")
def ci_check(ctx: DoctorContext) -> Outcome:
    from ailab.stack import (
        PublicAccessError,
        UnknownComponent,
        context,
        render_compose,
        render_kubernetes,
        selection,
        specs_for,
    )
    from ailab.stack import (
        component_catalog as catalog,
    )

    state = ctx.stack_state()
    names = selection(state, None)
    unknown = [n for n in names if n not in catalog()]
    fix = "fix what is named above; `ailab render compose` and `ailab export kubernetes` show the same error"
    if unknown:
        return fail(f"the stack lists unknown components: {', '.join(unknown)} (stack/state.json)", fix)
    try:
        rc = context(names, state)
        secrets = {k: "doctor-placeholder" for k in specs_for(rc.components)}
        gpu = state.gpu or "cpu"
        trees = {
            "compose": render_compose(rc, secrets, gpu),
            "kubernetes": render_kubernetes(rc, secrets, gpu),
        }
    except (UnknownComponent, PublicAccessError, KeyError, ValueError) as exc:
        return fail(f"rendering {len(names)} component(s) failed: {exc}", fix)
    problems = [f"{kind}: {p}" for kind, tree in trees.items() for p in validate_tree(tree.files)]
    if problems:
        return fail("; ".join(problems), fix)
    n = sum(len(t.files) for t in trees.values())
    return passed(f"{len(names)} component(s) render to {n} Compose and Kubernetes files")


CHECKS = [config_check, ci_check]
