"""Render a selection to Kubernetes objects: plain manifests and a Helm chart, from the same objects.

Secrets never appear in a manifest: containers read them from one Secret (`ailab-secrets`) that
`kustomization.yaml` generates from `secrets.env` (mode 0600), or that the chart expects to exist.
"""

from __future__ import annotations

from typing import Any

from ailab.stack.model import Component, ConfigFile, EnvValue, Join, RenderContext, SecretRef, Volume
from ailab.stack.render import config_files, image_for
from ailab.stack.wiring import resolve, secret_keys

SECRET_NAME = "ailab-secrets"
SECRET_VAR_PREFIX = "STACK_SECRET_"


def labels(comp: Component) -> dict[str, str]:
    return {"app.kubernetes.io/name": comp.name, "app.kubernetes.io/part-of": "ailab"}


def _secret_env(name: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": SECRET_NAME, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def derived_secrets(ctx: RenderContext, secrets: dict[str, str]) -> dict[str, str]:
    """Values of the `Scale.secret_env` variables (URLs with their passwords), for the Secret."""
    out: dict[str, str] = {}
    for comp in ctx.components.values():
        for name in comp.scale.secret_env if comp.scale else ():
            value = comp.env.get(name)
            if value is not None:
                out[name] = resolve(value, ctx, lambda key: secrets.get(key, ""))
    return out


def _env(comp: Component, ctx: RenderContext) -> list[dict[str, Any]]:
    """Secrets by reference; values that embed a secret use Kubernetes' `$(VAR)` expansion of a
    variable defined earlier in the same container."""
    env: list[dict[str, Any]] = []
    own = set(comp.scale.secret_env) if comp.scale else set()
    embedded = sorted(
        {k for n, v in comp.env.items() if isinstance(v, Join) and n not in own for k in secret_keys(v)}
    )
    env += [_secret_env(SECRET_VAR_PREFIX + key, key) for key in embedded]
    for name, value in comp.env.items():
        # Optional: with an external store (or sqlite/memory) the Secret may leave a URL out.
        env.append(_secret_env(name, name, optional=True) if name in own else _env_entry(name, value, ctx))
    return env


def _env_entry(name: str, value: EnvValue, ctx: RenderContext) -> dict[str, Any]:
    if isinstance(value, SecretRef):
        return _secret_env(name, value.key)
    text = resolve(value, ctx, lambda key: f"$({SECRET_VAR_PREFIX}{key})")
    return {"name": name, "value": text}


def _probe(comp: Component) -> dict[str, Any] | None:
    health = comp.health
    if health is None:
        return None
    port = comp.port(health.port).number
    action: dict[str, Any] = (
        {"httpGet": {"path": health.path, "port": port}} if health.path else {"tcpSocket": {"port": port}}
    )
    return {
        **action,
        "periodSeconds": 15,
        "failureThreshold": 4,
        "initialDelaySeconds": health.start_period_s,
    }


def _config_key(f: ConfigFile) -> str:
    return f.path.replace("/", "__")


def _mounts(comp: Component, files: list[ConfigFile]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for v in comp.volumes:
        if comp.scale is None:  # a StatefulSet's volumes come from its claim templates
            volumes.append({"name": v.name, "persistentVolumeClaim": {"claimName": f"{comp.name}-{v.name}"}})
        mounts.append({"name": v.name, "mountPath": v.target})
    if any(f.secret_key is None for f in files):
        volumes.append({"name": "config", "configMap": {"name": f"{comp.name}-config"}})
    if any(f.secret_key for f in files):
        volumes.append({"name": "secrets", "secret": {"secretName": SECRET_NAME}})
    for f in files:
        source, key = ("secrets", f.secret_key) if f.secret_key else ("config", _config_key(f))
        mounts.append({"name": source, "mountPath": f.target, "subPath": key, "readOnly": True})
    for i, (host, target) in enumerate(comp.privileged_mounts):
        volumes.append({"name": f"host-{i}", "hostPath": {"path": host}})
        mounts.append({"name": f"host-{i}", "mountPath": target, "readOnly": True})
    return volumes, mounts


def _container(comp: Component, ctx: RenderContext, gpu: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": comp.name, "image": image_for(comp, gpu)}
    if comp.command:
        container["args"] = list(comp.command)
    if comp.env:
        container["env"] = _env(comp, ctx)
    if comp.ports:
        container["ports"] = [
            {"name": p.name, "containerPort": p.number, "protocol": p.protocol} for p in comp.ports
        ]
    if mounts:
        container["volumeMounts"] = mounts
    if (probe := _probe(comp)) is not None:
        container["readinessProbe"] = probe
        container["livenessProbe"] = {**probe, "failureThreshold": 8}
        if comp.health is not None and comp.health.live_path and "httpGet" in probe:
            container["livenessProbe"]["httpGet"] = {**probe["httpGet"], "path": comp.health.live_path}
    if comp.scale is not None:
        container["resources"] = {"requests": dict(comp.scale.requests), "limits": dict(comp.scale.limits)}
    variant = comp.gpu_variants.get(gpu)
    if variant is not None and (variant.nvidia or variant.devices):
        resource = "nvidia.com/gpu" if variant.nvidia else "amd.com/gpu"
        container["resources"] = {"limits": {resource: 1}}
    return container


def _pvc(comp: Component, volume: Volume, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels(comp)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": volume.size}}},
    }


def _job(comp: Component, pod: dict[str, Any]) -> dict[str, Any]:
    """A one-shot component: retried until it succeeds, then kept a day for its log."""
    pod["restartPolicy"] = "OnFailure"
    spec = {
        "backoffLimit": 20,
        "ttlSecondsAfterFinished": 86400,
        "template": {"metadata": {"labels": labels(comp)}, "spec": pod},
    }
    meta = {"name": comp.name, "labels": labels(comp)}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def _workload(comp: Component, pod: dict[str, Any]) -> dict[str, Any]:
    """A Deployment; a StatefulSet for replicated components, each replica with its own data volume."""
    if comp.job:
        return _job(comp, pod)
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": comp.name}},
        "template": {"metadata": {"labels": labels(comp)}, "spec": pod},
    }
    meta = {"name": comp.name, "labels": labels(comp)}
    if comp.scale is None:
        # One writer per volume: never two pods on the same data during a rollout.
        spec["strategy"] = {"type": "Recreate" if comp.volumes else "RollingUpdate"}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    spec.update(
        {
            "serviceName": comp.name,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "volumeClaimTemplates": [_pvc(comp, v, v.name) for v in comp.volumes],
        }
    )
    # The image's user (Dockerfile); fsGroup makes the volume writable for it.
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}


def objects(comp: Component, ctx: RenderContext, gpu: str = "cpu") -> list[dict[str, Any]]:
    """The component's Kubernetes objects: PVCs, ConfigMap, Deployment (or StatefulSet), Service."""
    files = config_files(comp, ctx)
    out = [] if comp.scale else [_pvc(comp, v, f"{comp.name}-{v.name}") for v in comp.volumes]
    data = {_config_key(f): f.content for f in files if f.secret_key is None}
    if data:
        meta = {"name": f"{comp.name}-config", "labels": labels(comp)}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    volumes, mounts = _mounts(comp, files)
    pod: dict[str, Any] = {"containers": [_container(comp, ctx, gpu, mounts)]}
    if volumes:
        pod["volumes"] = volumes
    out.append(_workload(comp, pod))
    if comp.ports:
        ports = [
            {"name": p.name, "port": p.number, "targetPort": p.name, "protocol": p.protocol}
            for p in comp.ports
        ]
        spec = {"selector": {"app.kubernetes.io/name": comp.name}, "ports": ports}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": comp.name, "labels": labels(comp)},
                "spec": spec,
            }
        )
    return out


def all_objects(ctx: RenderContext, gpu: str = "cpu") -> dict[str, list[dict[str, Any]]]:
    return {name: objects(comp, ctx, gpu) for name, comp in sorted(ctx.components.items())}
