"""Stack checks: the metrics pipeline behind Grafana."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn
from ailab.ops.doctor.context import DoctorContext, connect_host, http_problem

# -- Grafana shows no metrics ---------------------------------------------------------------------------


def lab_addresses(ctx: DoctorContext) -> set[str]:
    """host:port spellings Prometheus may use for this lab's /metrics."""
    out: set[str] = set()
    url = ctx.lab_url
    if url:
        parts = urlsplit(url)
        port = parts.port or 80
        out |= {f"{parts.hostname}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}
    cfg = ctx.config.ailab
    out |= {f"{connect_host(cfg.host)}:{cfg.port}", f"{cfg.host}:{cfg.port}"}
    return out


def lab_targets(targets: list[dict[str, Any]], addresses: set[str]) -> list[dict[str, Any]]:
    """Prometheus's targets that scrape this lab: the `ailab` job, or any target at the lab's address."""
    found = []
    for t in targets:
        labels = t.get("labels") or {}
        address = (t.get("discoveredLabels") or {}).get("__address__") or labels.get("instance")
        path = (t.get("discoveredLabels") or {}).get("__metrics_path__", "/metrics")
        if labels.get("job") == "ailab" or (address in addresses and path == "/metrics"):
            found.append(t)
    return found


@check("metrics", "Prometheus scrapes the lab (what Grafana shows)", "grafana-no-metrics")
def metrics_check(ctx: DoctorContext) -> Outcome:
    comps = ctx.stack_components()
    if "prometheus" not in comps:
        if "grafana" in comps:
            return fail(
                "Grafana is installed without Prometheus: its dashboards have no data source",
                "`ailab install prometheus`, then render / up the stack again",
            )
        return skip("neither Prometheus nor Grafana is installed")
    url = ctx.component_url("prometheus")
    try:
        resp = ctx.http.get(f"{url}/api/v1/targets", params={"state": "active"})
    except httpx.HTTPError as exc:
        return fail(f"Prometheus at {url}: {http_problem(exc)}", "start the stack (`ailab up --runtime …`)")
    if resp.status_code != 200:
        return fail(f"Prometheus at {url}: /api/v1/targets answered HTTP {resp.status_code}")
    targets = (resp.json().get("data") or {}).get("activeTargets") or []
    mine = lab_targets(targets, lab_addresses(ctx))
    render = (
        "re-render the stack so prometheus.yml scrapes the lab (`ailab render compose`, or restart "
        "`ailab up --runtime native`), then reload Prometheus"
    )
    if not mine:
        jobs = sorted({(t.get("labels") or {}).get("job", "?") for t in targets})
        return fail(
            f"Prometheus at {url} does not scrape the lab (jobs: {', '.join(jobs) or 'none'})", render
        )
    up = [t for t in mine if t.get("health") == "up"]
    if up:
        return passed(f"Prometheus at {url} scrapes the lab at {up[0].get('scrapeUrl')} (up)")
    t = mine[0]
    if t.get("health") == "unknown":
        return warn(
            f"Prometheus at {url} has the lab as a target but has not scraped it yet", "wait a minute"
        )
    return fail(
        f"Prometheus at {url} cannot scrape the lab at {t.get('scrapeUrl')}: {t.get('lastError') or 'down'}",
        "start the lab; a 401 means the lab listens beyond loopback: give Prometheus the key "
        "(the scrape config's credentials_file) or set ailab.metrics_auth",
    )


CHECKS = [metrics_check]
