"""The Helm chart scales the lab out: shared stores required for replicas > 1, probes, resources, PDB, HPA,
NetworkPolicies, Ingress with TLS, external stores and secrets; what it renders validates offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ailab.stack.catalog import select
from ailab.stack.helm import ScaleError, check_replicas, render_kubernetes
from ailab.stack.model import RenderContext
from tests.stack.conftest import fake_secrets
from tests.stack.gotemplate import ChartFail, render

CORE_KINDS = {"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress", "StatefulSet"}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, str]]:
    ctx = RenderContext(select(["ailab"]))
    secrets = fake_secrets(ctx)
    out = tmp_path_factory.mktemp("chart")
    render_kubernetes(ctx, secrets).write(out)
    return out, yaml.safe_load((out / "chart/values.yaml").read_text()), secrets


def _render_all(out: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for template in sorted((out / "chart/templates").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(render(template.read_text(), values)) if d]
    return docs


def _with(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    v = copy.deepcopy(values)
    for dotted, value in changes.items():
        node = v
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return v


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"components__ailab__replicas": 3, "lab__ledger": "sqlite"}, "shared ledger"),
        ({"components__ailab__replicas": 2, "lab__limits": "memory"}, "shared limits"),
        ({"lab__autoscaling__enabled": True, "lab__limits": "memory"}, "shared limits"),
    ],
)
def test_chart_refuses_replicas_without_shared_stores(chart, changes, message) -> None:
    out, values, _ = chart
    with pytest.raises(ChartFail, match=message):
        _render_all(out, _with(values, **changes))


def test_one_replica_may_use_sqlite_and_memory(chart) -> None:
    out, values, _ = chart
    docs = _render_all(out, _with(values, lab__ledger="sqlite", lab__limits="memory"))
    lab = next(d for d in docs if d["kind"] == "StatefulSet")
    env = {e["name"]: e.get("value") for e in lab["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AILAB_LEDGER"] == "sqlite" and env["AILAB_LIMITS_BACKEND"] == "memory"
    assert not [d for d in docs if d["kind"] in ("PodDisruptionBudget", "HorizontalPodAutoscaler")]


def test_scaled_out_chart_renders_valid_objects(chart) -> None:
    out, values, _ = chart
    scaled = _with(
        values,
        components__ailab__replicas=3,
        lab__autoscaling__enabled=True,
        lab__ingress__enabled=True,
        externalSecrets__enabled=True,
    )
    scaled["lab"]["ingress"]["annotations"] = {"cert-manager.io/cluster-issuer": "letsencrypt"}
    docs = _render_all(out, scaled)
    kinds = [d["kind"] for d in docs]
    assert set(kinds) >= CORE_KINDS and "ExternalSecret" in kinds
    for doc in docs:
        if doc["kind"] != "ExternalSecret":  # a CRD: not in the core schemas
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
    by_kind = {d["kind"]: d for d in docs}
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "ailab"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    ingress = by_kind["Ingress"]
    assert ingress["spec"]["tls"] == [{"hosts": ["ailab.example.org"], "secretName": "ailab-tls"}]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert by_kind["ExternalSecret"]["spec"]["target"]["name"] == values["secretName"]
    lab = by_kind["StatefulSet"]
    assert lab["spec"]["replicas"] == 3
    container = lab["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert set(container["resources"]) == {"requests", "limits"}
    assert lab["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_defaults_render_network_policies_only(chart) -> None:
    out, values, _ = chart
    docs = [
        d
        for d in yaml.safe_load_all(render((out / "chart/templates/ailab-scaling.yaml").read_text(), values))
        if d
    ]
    assert [d["kind"] for d in docs] == ["NetworkPolicy", "NetworkPolicy"]
    stores = docs[1]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert stores == ["postgres", "redis", "qdrant"]


def test_external_stores_leave_the_components_out(chart) -> None:
    out, values, secrets = chart
    external = _with(values, components__postgres__enabled=False, components__redis__enabled=False)
    external = _with(external, components__ailab__replicas=2)
    names = {d["metadata"]["name"] for d in _render_all(out, external)}
    assert "postgres" not in names and "redis" not in names and "ailab" in names
    # The lab reads its store URLs from the Secret by name: put the external ones there.
    docs = list(yaml.safe_load_all((out / "manifests/ailab.yaml").read_text()))
    env = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["AILAB_DATABASE_URL"] == {
        "name": "ailab-secrets",
        "key": "AILAB_DATABASE_URL",
        "optional": True,
    }
    secrets_env = dict(
        line.split("=", 1) for line in (out / "manifests/secrets.env").read_text().splitlines() if line
    )
    assert secrets_env["AILAB_DATABASE_URL"] == (
        f"postgresql+psycopg://ailab:{secrets['POSTGRES_PASSWORD']}@postgres:5432/ailab"
    )
    assert secrets_env["AILAB_REDIS_URL"].endswith("@redis:6379/0")


def test_renderer_refuses_replicas_without_shared_stores() -> None:
    ctx = RenderContext(select(["ailab"]))
    lone = RenderContext({"ailab": ctx.components["ailab"]})
    with pytest.raises(ScaleError, match="shared stores"):
        check_replicas(lone, 2)
    with pytest.raises(ScaleError):
        check_replicas(ctx, 0)
    check_replicas(ctx, 4)
