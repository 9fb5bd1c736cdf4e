"""Acceptance: manifests validate offline, and the Helm chart's defaults render to those very manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.stack import gotemplate


def render_chart(template: str, values: dict[str, Any]) -> str:
    return gotemplate.render(template, values)


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
    templates = sorted(t for t in (out / "chart/templates").glob("*.yaml") if t.name != "ailab-scaling.yaml")
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
    assert next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["replicas"] == 3


def test_no_secret_value_in_manifests_or_chart(k8s_all) -> None:
    _, secrets, out, tree = k8s_all
    for rel, (text, mode) in tree.files.items():
        if rel == "manifests/secrets.env":
            assert mode == 0o600
            continue
        assert not [k for k, v in secrets.items() if v in text], rel
    kustomization = yaml.safe_load((out / "manifests/kustomization.yaml").read_text())
    assert kustomization["secretGenerator"][0]["envs"] == ["secrets.env"]
