"""The Helm chart's scale-out template: checks, PodDisruptionBudget, HPA, NetworkPolicies, Ingress, and an
ExternalSecret; each switched by `values.yaml` (`lab:`, `externalSecrets:`).

Written as Go template text around objects built here, using only `if`/`end`, `fail`, `and`/`or`/`not`,
`eq`/`ne`/`gt`, `int`, `quote` and `toJson`: the subset tests/stack/gotemplate.py renders.
"""

from __future__ import annotations

from typing import Any

from ailab.stack.kubernetes import labels
from ailab.stack.model import RenderContext
from ailab.stack.render import dump

_MARK = "@@values:"
# The stores the lab's replicas share: only the lab (and what it wires) may reach them.
STORES = ("postgres", "redis", "qdrant")

_SHARED_LEDGER = (
    "ailab: more than one replica needs the shared ledger: set lab.ledger=postgres (the chart's postgres, "
    "or an external one as AILAB_DATABASE_URL in the Secret)"
)
_SHARED_LIMITS = (
    "ailab: more than one replica needs shared limits: set lab.limits=redis (the chart's redis, or an "
    "external one as AILAB_REDIS_URL in the Secret)"
)


def lab_values() -> dict[str, Any]:
    """Defaults for the scale-out knobs (docs/deploy.md explains each)."""
    return {
        "lab": {
            "ledger": "postgres",  # or sqlite (one replica only)
            "limits": "redis",  # or memory (one replica only)
            "autoscaling": {
                "enabled": False,
                "minReplicas": 2,
                "maxReplicas": 6,
                "targetCPUUtilizationPercentage": 70,
            },
            "podDisruptionBudget": {"minAvailable": 1},
            "networkPolicy": {"enabled": True, "ingressNamespace": "ingress-nginx"},
            "ingress": {
                "enabled": False,
                "className": "nginx",
                "host": "ailab.example.org",
                "tlsSecretName": "ailab-tls",
                "annotations": {},
            },
        },
        "externalSecrets": {
            "enabled": False,
            "storeName": "vault",
            "storeKind": "ClusterSecretStore",
            "remoteKey": "ailab/stack",  # one remote secret whose properties are the Secret's keys
            "refreshInterval": "1h",
        },
    }


def _v(path: str, mode: str = "quote") -> str:
    return f"{_MARK}{path}|{mode}@@"


def _meta(name: str, ctx: RenderContext) -> dict[str, Any]:
    return {"name": name, "labels": labels(ctx.components["ailab"])}


def _pdb(ctx: RenderContext) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta("ailab", ctx),
        "spec": {
            "minAvailable": _v("lab.podDisruptionBudget.minAvailable", "raw"),
            "selector": {"matchLabels": {"app.kubernetes.io/name": "ailab"}},
        },
    }


def _hpa(ctx: RenderContext) -> dict[str, Any]:
    target = {
        "type": "Utilization",
        "averageUtilization": _v("lab.autoscaling.targetCPUUtilizationPercentage", "raw"),
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta("ailab", ctx),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "ailab"},
            "minReplicas": _v("lab.autoscaling.minReplicas", "raw"),
            "maxReplicas": _v("lab.autoscaling.maxReplicas", "raw"),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def _network_policies(ctx: RenderContext) -> list[dict[str, Any]]:
    stack_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "ailab"}}}
    controller = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": _v("lab.networkPolicy.ingressNamespace")}
        }
    }
    lab = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("ailab", ctx),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ailab"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [stack_pods, controller], "ports": [{"port": 8765, "protocol": "TCP"}]}],
        },
    }
    stores = [s for s in STORES if ctx.has(s)]
    if not stores:
        return [lab]
    selector = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": stores}]}
    shared = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("ailab-stores", ctx),
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": [{"from": [stack_pods]}]},
    }
    return [lab, shared]


def _ingress(ctx: RenderContext) -> dict[str, Any]:
    backend = {"service": {"name": "ailab", "port": {"number": 8765}}}
    meta = _meta("ailab", ctx)
    meta["annotations"] = _v("lab.ingress.annotations", "json")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "ingressClassName": _v("lab.ingress.className"),
            "tls": [{"hosts": [_v("lab.ingress.host")], "secretName": _v("lab.ingress.tlsSecretName")}],
            "rules": [
                {
                    "host": _v("lab.ingress.host"),
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }


def _external_secret(ctx: RenderContext) -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": _meta("ailab-secrets", ctx),
        "spec": {
            "refreshInterval": _v("externalSecrets.refreshInterval"),
            "secretStoreRef": {
                "name": _v("externalSecrets.storeName"),
                "kind": _v("externalSecrets.storeKind"),
            },
            "target": {"name": _v("secretName"), "creationPolicy": "Owner"},
            "dataFrom": [{"extract": {"key": _v("externalSecrets.remoteKey")}}],
        },
    }


def _docs(objs: list[dict[str, Any]]) -> str:
    from ailab.stack.helm import _to_template

    return "".join("---\n" + _to_template(dump(o)) for o in objs)


def _when(condition: str, body: str) -> str:
    return f"{{{{- if {condition} }}}}\n{body}{{{{- end }}}}\n"


def scaling_template(ctx: RenderContext) -> str:
    several = "or (gt (int .Values.components.ailab.replicas) 1) .Values.lab.autoscaling.enabled"
    checks = _when('ne .Values.lab.ledger "postgres"', f'{{{{- fail "{_SHARED_LEDGER}" }}}}\n') + _when(
        'ne .Values.lab.limits "redis"', f'{{{{- fail "{_SHARED_LIMITS}" }}}}\n'
    )
    body = (
        _when(several, checks + _docs([_pdb(ctx)]))
        + _when(".Values.lab.autoscaling.enabled", _docs([_hpa(ctx)]))
        + _when(".Values.lab.networkPolicy.enabled", _docs(_network_policies(ctx)))
        + _when(".Values.lab.ingress.enabled", _docs([_ingress(ctx)]))
        + _when(".Values.externalSecrets.enabled", _docs([_external_secret(ctx)]))
    )
    return _when(".Values.components.ailab.enabled", body)
