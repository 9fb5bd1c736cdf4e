"""Monitoring as data: Prometheus scrape config and alert rules, Grafana provisioning, from the catalog.

Alert rules and dashboards ship as package data (ailab/observability/alerts, .../dashboards); only what
depends on the selection (component-down rules, the budget threshold, scrape jobs) is generated here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import yaml

from ailab.stack.model import ConfigFile, RenderContext

RULES_DIR = "/etc/prometheus/rules"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards"
SECRETS_DIR = "/run/secrets"
DEFAULT_BUDGET_USD = 100.0


def _data_files(package: str, suffix: str) -> dict[str, str]:
    root = resources.files(package)
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(suffix)
    }


def dashboards() -> dict[str, str]:
    """Grafana dashboards (file name -> JSON text)."""
    return _data_files("ailab.observability.dashboards", ".json")


def static_rules() -> dict[str, str]:
    return _data_files("ailab.observability.alerts", ".yml")


def scrape_config(ctx: RenderContext, secrets_dir: str | None = SECRETS_DIR) -> dict[str, Any]:
    """prometheus.yml for the selection: one job per component with a metrics endpoint."""
    jobs: list[dict[str, Any]] = []
    for comp in sorted(ctx.components.values(), key=lambda c: c.name):
        if comp.metrics is None or (ctx.target == "native" and comp.name not in ctx.native_ports):
            continue
        job: dict[str, Any] = {
            "job_name": comp.name,
            "metrics_path": comp.metrics.path,
            "static_configs": [
                {"targets": [ctx.address(comp.name, comp.metrics.port)], "labels": {"component": comp.name}}
            ],
        }
        if comp.metrics.bearer_secret and secrets_dir is not None:
            job["authorization"] = {"credentials_file": f"{secrets_dir}/{comp.metrics.bearer_secret}"}
        jobs.append(job)
    config: dict[str, Any] = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [f"{RULES_DIR}/*.yml"] if ctx.target == "cluster" else ["rules/*.yml"],
        "scrape_configs": jobs,
    }
    if ctx.has("alertmanager") and ctx.target == "cluster":
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [ctx.address("alertmanager", "http")]}]}]
        }
    return config


def component_rules(ctx: RenderContext, budget_usd: float = DEFAULT_BUDGET_USD) -> dict[str, Any]:
    """Rules that depend on the selection: one 'down' alert per scraped component, and the budget."""
    down = [
        {
            "alert": "ComponentDown",
            "expr": f'up{{job="{c.name}"}} == 0',
            "for": "2m",
            "labels": {"severity": "critical", "component": c.name},
            "annotations": {
                "summary": f"{c.name} is down",
                "description": f"Prometheus cannot scrape {c.name}; see `ailab logs {c.name}`.",
            },
        }
        for c in sorted(ctx.components.values(), key=lambda c: c.name)
        if c.metrics is not None
    ]
    budget = {
        "alert": "MonthlyBudget80Percent",
        "expr": f"sum(increase(ailab_cost_usd_total[30d])) >= {0.8 * budget_usd:g}",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "80% of the stack's 30-day budget is spent",
            "description": f"Spend over the last 30 days has reached 80% of {budget_usd:g} USD.",
        },
    }
    return {"groups": [{"name": "ailab-components", "rules": [*down, budget]}]}


def prometheus_files(ctx: RenderContext) -> list[ConfigFile]:
    files = [
        ConfigFile("prometheus.yml", "/etc/prometheus/prometheus.yml", yaml.safe_dump(scrape_config(ctx))),
        ConfigFile(
            "rules/components.yml",
            f"{RULES_DIR}/components.yml",
            yaml.safe_dump(component_rules(ctx, ctx.budget_usd), sort_keys=False),
        ),
    ]
    files += [
        ConfigFile(f"rules/{name}", f"{RULES_DIR}/{name}", text) for name, text in static_rules().items()
    ]
    secrets = sorted(
        {c.metrics.bearer_secret for c in ctx.components.values() if c.metrics and c.metrics.bearer_secret}
    )
    files += [ConfigFile(f"secrets/{key}", f"{SECRETS_DIR}/{key}", "", secret_key=key) for key in secrets]
    return files


def grafana_files(ctx: RenderContext) -> list[ConfigFile]:
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://{ctx.address('prometheus', 'http')}",
                "isDefault": True,
            }
        ],
    }
    provider = {
        "apiVersion": 1,
        "providers": [
            {"name": "ailab", "folder": "Local AI Lab", "type": "file", "options": {"path": DASHBOARDS_DIR}}
        ],
    }
    base = "/etc/grafana/provisioning"
    files = [
        ConfigFile(
            "provisioning/datasources/ailab.yml", f"{base}/datasources/ailab.yml", yaml.safe_dump(datasource)
        ),
        ConfigFile(
            "provisioning/dashboards/ailab.yml", f"{base}/dashboards/ailab.yml", yaml.safe_dump(provider)
        ),
    ]
    for name, text in dashboards().items():
        files.append(ConfigFile(f"dashboards/{name}", str(PurePosixPath(DASHBOARDS_DIR) / name), text))
    return files


def alertmanager_files(ctx: RenderContext) -> list[ConfigFile]:
    # A receiver with no integrations: alerts are visible in Alertmanager's UI until the user adds one.
    config = {
        "route": {"receiver": "default", "group_by": ["alertname", "component"]},
        "receivers": [{"name": "default"}],
    }
    return [ConfigFile("alertmanager.yml", "/etc/alertmanager/alertmanager.yml", yaml.safe_dump(config))]
