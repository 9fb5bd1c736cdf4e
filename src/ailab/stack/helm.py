"""The Helm chart and the plain manifests, written from the same objects.

Templates are the manifests with a few leaves (image, replicas, storage size, Secret name) replaced by
`{{ .Values.… }}` references and nothing else, so rendering the chart's default values must give back the
plain manifests exactly; tests/stack checks that with a renderer of just that subset of Go templates.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from ailab import __version__
from ailab.stack.kubernetes import SECRET_NAME, all_objects, derived_secrets
from ailab.stack.model import RenderContext
from ailab.stack.render import Tree, dump_all

_MARK = "@@values:"


def values_key(component: str) -> str:
    return component.replace("-", "_")


def _mark(path: str, quote: bool = True) -> str:
    return f"{_MARK}{path}|{'quote' if quote else 'raw'}@@"


def _mark_json(path: str) -> str:
    return f"{_MARK}{path}|json@@"


# The lab's env values that the chart's `lab:` values choose (checked against the replica count).
_LAB_ENV = {"AILAB_LEDGER": "lab.ledger", "AILAB_LIMITS_BACKEND": "lab.limits"}


def _templated(obj: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` with its parametrised leaves replaced by markers; fills `values` with defaults."""
    t = copy.deepcopy(obj)
    name = t["metadata"]["labels"]["app.kubernetes.io/name"]
    comp_values = values["components"].setdefault(values_key(name), {"enabled": True})
    key = f"components.{values_key(name)}"
    if t["kind"] in ("Deployment", "StatefulSet"):
        container = t["spec"]["template"]["spec"]["containers"][0]
        comp_values["image"] = container["image"]
        comp_values["replicas"] = t["spec"]["replicas"]
        container["image"] = _mark(f"{key}.image")
        t["spec"]["replicas"] = _mark(f"{key}.replicas", quote=False)
        if t["kind"] == "StatefulSet":
            comp_values["resources"] = container["resources"]
            container["resources"] = _mark_json(f"{key}.resources")
            for claim in t["spec"]["volumeClaimTemplates"]:
                volume = claim["metadata"]["name"].replace("-", "_")
                comp_values.setdefault("storage", {})[volume] = claim["spec"]["resources"]["requests"][
                    "storage"
                ]
                claim["spec"]["resources"]["requests"]["storage"] = _mark(f"{key}.storage.{volume}")
        for entry in container.get("env", []):
            if entry["name"] in _LAB_ENV:
                entry["value"] = _mark(_LAB_ENV[entry["name"]])
        _mark_secret_refs(t)
    elif t["kind"] == "Job":  # a one-shot component (stack/model.py `job`): its image and secrets
        container = t["spec"]["template"]["spec"]["containers"][0]
        comp_values["image"] = container["image"]
        container["image"] = _mark(f"{key}.image")
        _mark_secret_refs(t)
    elif t["kind"] == "PersistentVolumeClaim":
        volume = t["metadata"]["name"][len(name) + 1 :].replace("-", "_")
        comp_values.setdefault("storage", {})[volume] = t["spec"]["resources"]["requests"]["storage"]
        t["spec"]["resources"]["requests"]["storage"] = _mark(f"{key}.storage.{volume}")
    return t


def _mark_secret_refs(node: Any) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("secretKeyRef",) and isinstance(v, dict):
                v["name"] = _mark("secretName")
            elif k == "secret" and isinstance(v, dict) and "secretName" in v:
                v["secretName"] = _mark("secretName")
            else:
                _mark_secret_refs(v)
    elif isinstance(node, list):
        for item in node:
            _mark_secret_refs(item)


def _to_template(text: str) -> str:
    """Markers (dumped as quoted or plain YAML scalars) -> Go template actions."""
    import re

    def action(m: re.Match[str]) -> str:
        path, mode = m.group(1), m.group(2)
        if mode == "json":
            return f"{{{{ toJson .Values.{path} }}}}"
        return f"{{{{ .Values.{path}{' | quote' if mode == 'quote' else ''} }}}}"

    # Literal braces (Grafana legends, say) are escaped first, in one pass, so Helm leaves them alone.
    text = re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group() + '" }}', text)
    return re.sub(r"['\"]?" + _MARK + r"([A-Za-z0-9_.]+)\|(quote|raw|json)@@['\"]?", action, text)


class ScaleError(ValueError):
    """A replica count the selected stores cannot support; the message says what to add."""


def check_replicas(ctx: RenderContext, replicas: int) -> None:
    if replicas < 1:
        raise ScaleError("--replicas must be at least 1")
    if replicas > 1 and not (ctx.has("postgres") and ctx.has("redis")):
        raise ScaleError(
            f"{replicas} gateway replicas need shared stores: the ledger on PostgreSQL and limits on Redis "
            "(install postgres and redis, or point AILAB_DATABASE_URL/AILAB_REDIS_URL at external ones)"
        )


def render_kubernetes(
    ctx: RenderContext, secrets: dict[str, str], gpu: str = "cpu", replicas: int = 1
) -> Tree:
    from ailab.stack.chart import lab_values, scaling_template

    check_replicas(ctx, replicas)
    tree = Tree()
    per_component = all_objects(ctx, gpu)
    if "ailab" in per_component:
        for obj in per_component["ailab"]:
            if obj["kind"] == "StatefulSet":
                obj["spec"]["replicas"] = replicas
    values: dict[str, Any] = {"secretName": SECRET_NAME, "components": {}, **lab_values()}
    for name, objs in per_component.items():
        tree.add(f"manifests/{name}.yaml", dump_all(objs))
        templated = [_templated(o, values) for o in objs]
        body = _to_template(dump_all(templated))
        key = values_key(name)
        tree.add(
            f"chart/templates/{name}.yaml",
            f"{{{{- if .Values.components.{key}.enabled }}}}\n{body}{{{{- end }}}}\n",
        )
    if "ailab" in per_component:
        tree.add("chart/templates/ailab-scaling.yaml", scaling_template(ctx))
    all_secrets = {**secrets, **derived_secrets(ctx, secrets)}
    tree.add("manifests/kustomization.yaml", yaml.safe_dump(_kustomization(sorted(per_component))))
    tree.add("manifests/secrets.env", "".join(f"{k}={v}\n" for k, v in sorted(all_secrets.items())), 0o600)
    tree.add("chart/values.yaml", yaml.safe_dump(values, sort_keys=True))
    chart = {
        "apiVersion": "v2",
        "name": ctx.project,
        "description": "Local AI Lab stack (generated by `ailab export kubernetes`)",
        "type": "application",
        "version": __version__,
        "appVersion": __version__,
    }
    tree.add("chart/Chart.yaml", yaml.safe_dump(chart, sort_keys=False))
    return tree


def _kustomization(names: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{n}.yaml" for n in names],
        "secretGenerator": [{"name": SECRET_NAME, "envs": ["secrets.env"]}],
        "generatorOptions": {"disableNameSuffixHash": True},
    }
