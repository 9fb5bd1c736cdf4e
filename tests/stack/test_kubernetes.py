"""Acceptance: manifests validate offline, and the Helm chart's defaults render to those very manifests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# An action is `{{ … }}` where the body may hold quoted strings (which may contain braces), like Go's lexer.
ACTION = re.compile(r'\{\{((?:"[^"]*"|[^"}])*)\}\}')
VALUE = re.compile(r"^ \.Values\.([A-Za-z0-9_.]+)( \| quote)? $")
LITERAL = re.compile(r'^ "(\{\{|\}\})" $')


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def render_chart(template: str, values: dict[str, Any]) -> str:
    """Go-template rendering for exactly the subset the chart uses; anything else fails the test."""

    def action(m: re.Match[str]) -> str:
        body = m.group(1)
        if lit := LITERAL.match(body):
            return lit.group(1)
        found = VALUE.match(body)
        assert found, f"unsupported template action {{{{{body}}}}}"
        value = _lookup(values, found.group(1))
        return (
            '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' if found.group(2) else str(value)
        )

    return ACTION.sub(action, template)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_manifests_validate_offline(k8s_all) -> None:
    _, _, out, _ = k8s_all
    count = 0
    for path in sorted((out / "manifests").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _docs(path):
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
            count += 1
    assert count > 60


def test_chart_defaults_render_to_the_plain_manifests(k8s_all) -> None:
    ctx, _, out, _ = k8s_all
    values = yaml.safe_load((out / "chart/values.yaml").read_text())
    templates = sorted((out / "chart/templates").glob("*.yaml"))
    assert [t.name for t in templates] == sorted(f"{n}.yaml" for n in ctx.components)
    for template in templates:
        rendered = [d for d in yaml.safe_load_all(render_chart(template.read_text(), values)) if d]
        assert rendered == _docs(out / "manifests" / template.name), template.name
    assert yaml.safe_load((out / "chart/Chart.yaml").read_text())["apiVersion"] == "v2"


def test_chart_values_change_what_they_should(k8s_all) -> None:
    _, _, out, _ = k8s_all
    values = yaml.safe_load((out / "chart/values.yaml").read_text())
    values["components"]["ailab"]["replicas"] = 3
    docs = list(yaml.safe_load_all(render_chart((out / "chart/templates/ailab.yaml").read_text(), values)))
    assert next(d for d in docs if d["kind"] == "Deployment")["spec"]["replicas"] == 3


def test_no_secret_value_in_manifests_or_chart(k8s_all) -> None:
    _, secrets, out, tree = k8s_all
    for rel, (text, mode) in tree.files.items():
        if rel == "manifests/secrets.env":
            assert mode == 0o600
            continue
        assert not [k for k, v in secrets.items() if v in text], rel
    kustomization = yaml.safe_load((out / "manifests/kustomization.yaml").read_text())
    assert kustomization["secretGenerator"][0]["envs"] == ["secrets.env"]
