"""Acceptance: every URL a component uses resolves to the target's service name and port, in compose and
Kubernetes; no rendered file holds a default or empty password."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailab.stack.model import HostPort, Ref
from ailab.stack.wiring import references
from tests.stack.conftest import load_compose

ADDRESS = re.compile(r"(?:[a-z]+://)?(?:[^@/\s]*@)?([a-z0-9-]+):(\d+)")
DEFAULTS = {
    "admin",
    "password",
    "changeme",
    "secret",
    "root",
    "milvus",
    "minioadmin",
    "difyai123456",
    "postgres",
}
SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|AUTHKEY", re.I)


def _wired(ctx) -> list[tuple[str, str, Ref | HostPort]]:
    return [
        (comp.name, var, ref)
        for comp in ctx.components.values()
        for var, value in comp.env.items()
        for ref in references(value)
    ]


def _assert_points_at(value: str, ref: Ref | HostPort, services: dict[str, set[int]]) -> None:
    hosts = [(h, int(p)) for h, p in ADDRESS.findall(value)]
    assert hosts, f"no host:port in {value!r}"
    host, port = hosts[-1] if isinstance(ref, Ref) else hosts[0]
    assert host == ref.component and host in services, value
    assert port in services[host], f"{value}: {host} does not listen on {port}"


def test_compose_urls_resolve_to_service_and_port(compose_project) -> None:
    ctx, _, out = compose_project
    doc = load_compose(out)
    services = {name: {c.number for c in ctx.components[name].ports} for name in doc["services"]}
    wired = _wired(ctx)
    assert wired or ctx.components.keys() <= {
        "prometheus",
        "alertmanager",
        "grafana",
        "node-exporter",
        "cadvisor",
    } | {"cloudflared", "tailscale", "traefik", "vault", "openbao", "milvus"}
    for comp, var, ref in wired:
        _assert_points_at(doc["services"][comp]["environment"][var], ref, services)
    _check_config_urls(out, ctx, services)


def _check_config_urls(out: Path, ctx, services: dict[str, set[int]]) -> None:
    if "prometheus" in ctx.components:
        prom = yaml.safe_load((out / "config/prometheus/prometheus.yml").read_text())
        jobs = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in prom["scrape_configs"]}
        assert set(jobs) == {c.name for c in ctx.components.values() if c.metrics}
        for job, target in jobs.items():
            _assert_points_at(target, HostPort(job, "http"), services)
    if "grafana" in ctx.components:
        ds = yaml.safe_load((out / "config/grafana/provisioning/datasources/ailab.yml").read_text())
        _assert_points_at(ds["datasources"][0]["url"], Ref("prometheus"), services)


def test_kubernetes_urls_resolve_to_service_and_port(k8s_all) -> None:
    ctx, _, out, _ = k8s_all
    docs = [
        d
        for p in (out / "manifests").glob("*.yaml")
        if p.name != "kustomization.yaml"
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]
    services = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]} for d in docs if d["kind"] == "Service"
    }
    workloads = ("Deployment", "StatefulSet", "Job")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] in workloads}
    # The lab's store URLs live in the Secret under their own names (an external store replaces them).
    secret = dict(ln.split("=", 1) for ln in (out / "manifests/secrets.env").read_text().splitlines() if ln)
    for comp, var, ref in _wired(ctx):
        env = deployments[comp]["spec"]["template"]["spec"]["containers"][0]["env"]
        entry = next(e for e in env if e["name"] == var)
        value = entry["value"] if "value" in entry else secret[entry["valueFrom"]["secretKeyRef"]["key"]]
        _assert_points_at(value, ref, services)


def test_wiring_declares_the_issue_s_pairs() -> None:
    from tests.stack.conftest import context

    ctx = context("all")
    env = {c: ctx.components[c].env for c in ctx.components}
    for consumer, var in [
        ("open-webui", "OPENAI_API_BASE_URL"),
        ("n8n", "OPENAI_API_BASE"),
        ("jupyter", "OPENAI_BASE_URL"),
        ("dify-api", "LAB_OPENAI_BASE_URL"),
    ]:
        assert env[consumer][var] == Ref("ailab", "http", "/v1"), consumer
    assert env["dify-api"]["QDRANT_URL"] == env["ailab"]["AILAB_QDRANT_URL"] == Ref("qdrant", "http")


def _env_values(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (k, str(v)) for svc in doc["services"].values() for k, v in (svc.get("environment") or {}).items()
    ]


def test_no_default_or_empty_password_in_any_rendered_file(compose_project) -> None:
    _, _, out = compose_project
    for key, value in _env_values(load_compose(out)):
        if SENSITIVE.search(key):
            assert value.startswith("${") or "${" in value, f"{key} is not taken from the secret store"
    env_file = dict(line.split("=", 1) for line in (out / ".env").read_text().splitlines())
    for key, value in env_file.items():
        assert value, f"{key} is empty in .env"
        assert value.lower() not in DEFAULTS, f"{key} has a well-known default value"
        if key != "COMPOSE_PROJECT_NAME":
            assert len(value) >= 24, key
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(
                r"(?i)(password|secret)\s*[:=]\s*[\"']?(admin|password|changeme|secret)?[\"']?\s*$",
                text,
                re.M,
            ), path


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "REDIS_PASSWORD"])
def test_kubernetes_reads_passwords_from_the_secret(k8s_all, name: str) -> None:
    _, _, out, _ = k8s_all
    text = "".join(p.read_text() for p in (out / "manifests").glob("*.yaml"))
    assert f"key: {name}" in text and "secretKeyRef" in text
