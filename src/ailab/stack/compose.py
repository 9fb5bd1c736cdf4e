"""Render a selection to a Docker Compose project: compose file, env file, config dirs.

The compose file holds no secret: values come from `.env` (mode 0600) through `${KEY:?…}` interpolation,
and secret files (Prometheus' scrape credentials) from `secrets/` through compose's `secrets:`.
"""

from __future__ import annotations

from typing import Any

from ailab.stack.model import Component, RenderContext
from ailab.stack.render import Tree, config_files, dump, image_for
from ailab.stack.wiring import resolve

COMPOSE_FILE = "docker-compose.yml"


def _escape(text: str) -> str:
    return text.replace("$", "$$")  # compose would interpolate a bare `$`


def _secret_placeholder(key: str) -> str:
    return f"${{{key}:?{key} is missing from .env - run ailab render compose}}"


def _env(comp: Component, ctx: RenderContext) -> dict[str, str]:
    out = {}
    for name, value in comp.env.items():
        if isinstance(value, str):
            out[name] = _escape(value)
        else:
            out[name] = resolve(value, ctx, _secret_placeholder)
    return out


def _healthcheck(comp: Component) -> dict[str, Any] | None:
    if comp.health is None or not comp.health.command:
        return None
    return {
        "test": list(comp.health.command),
        "interval": "30s",
        "timeout": "5s",
        "retries": 5,
        "start_period": f"{comp.health.start_period_s}s",
    }


def _depends(comp: Component, ctx: RenderContext) -> dict[str, Any]:
    deps = {}
    for dep in comp.depends_on:
        has_check = _healthcheck(ctx.components[dep]) is not None
        deps[dep] = {"condition": "service_healthy" if has_check else "service_started"}
    return deps


def _gpu(comp: Component, gpu: str, svc: dict[str, Any]) -> None:
    variant = comp.gpu_variants.get(gpu)
    if variant is None:
        return
    if variant.nvidia:
        devices = [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        svc["deploy"] = {"resources": {"reservations": {"devices": devices}}}
    if variant.devices:
        svc["devices"] = list(variant.devices)


def service(comp: Component, ctx: RenderContext, gpu: str, tree: Tree) -> dict[str, Any]:
    restart = "on-failure" if comp.job else "unless-stopped"  # a job exits 0 once done, and stays done
    svc: dict[str, Any] = {"image": image_for(comp, gpu), "restart": restart}
    if comp.command:
        svc["command"] = [_escape(c) for c in comp.command]
    if comp.env:
        svc["environment"] = _env(comp, ctx)
    ports = [f"127.0.0.1:{p.host}:{p.number}" for p in comp.ports if p.host is not None]
    if ports:
        svc["ports"] = ports
    volumes = [f"{comp.name}_{v.name}:{v.target}" for v in comp.volumes]
    volumes += [f"{host}:{target}:ro" for host, target in comp.privileged_mounts]
    secrets = []
    for f in config_files(comp, ctx):
        if f.secret_key is not None:
            secrets.append({"source": f.secret_key.lower(), "target": f.secret_key})
            continue
        tree.add(f"config/{comp.name}/{f.path}", f.content)
        volumes.append(f"./config/{comp.name}/{f.path}:{f.target}:ro")
    if volumes:
        svc["volumes"] = volumes
    if secrets:
        svc["secrets"] = secrets
    if (check := _healthcheck(comp)) is not None:
        svc["healthcheck"] = check
    if comp.depends_on:
        svc["depends_on"] = _depends(comp, ctx)
    _gpu(comp, gpu, svc)
    svc["labels"] = _labels(comp)
    return svc


def _labels(comp: Component) -> dict[str, str]:
    labels = {"ailab.component": comp.name, "ailab.phase": str(comp.phase)}
    if comp.backup and comp.backup.paths:
        labels["ailab.backup.paths"] = ",".join(comp.backup.paths)
    if comp.backup and comp.backup.dump:
        labels["ailab.backup.dump"] = " ".join(comp.backup.dump)
    return labels


def render_compose(ctx: RenderContext, secrets: dict[str, str], gpu: str = "cpu") -> Tree:
    """The whole project as a file tree; `secrets` are the values for `.env` and `secrets/`."""
    tree = Tree()
    services = {name: service(comp, ctx, gpu, tree) for name, comp in sorted(ctx.components.items())}
    volumes = {
        f"{c.name}_{v.name}": {"name": f"{ctx.project}_{c.name}_{v.name}"}
        for c in ctx.components.values()
        for v in c.volumes
    }
    secret_keys = sorted({s["target"] for svc in services.values() for s in svc.get("secrets", [])})
    project: dict[str, Any] = {"services": services}
    if volumes:
        project["volumes"] = dict(sorted(volumes.items()))
    if secret_keys:
        project["secrets"] = {k.lower(): {"file": f"./secrets/{k}"} for k in secret_keys}
        for key in secret_keys:
            if key in secrets:
                tree.add(f"secrets/{key}", secrets[key], 0o600)
    tree.add(COMPOSE_FILE, dump(project))
    env_lines = [f"COMPOSE_PROJECT_NAME={ctx.project}"] + [f"{k}={v}" for k, v in sorted(secrets.items())]
    tree.add(".env", "\n".join(env_lines) + "\n", 0o600)
    return tree
