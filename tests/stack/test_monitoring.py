"""Acceptance: Prometheus config and alert rules pass promtool; dashboards are valid data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from ailab.stack.monitoring import dashboards, static_rules
from tests.stack.conftest import need


def _localise(out: Path) -> Path:
    """prometheus.yml with in-container paths pointed at the rendered files, so promtool can open them."""
    config = (out / "config/prometheus/prometheus.yml").read_text()
    config = config.replace("/etc/prometheus/rules", str(out / "config/prometheus/rules"))
    config = config.replace("/run/secrets", str(out / "secrets"))
    path = out / "prometheus-check.yml"
    path.write_text(config)
    return path


def test_promtool_accepts_config_and_rules(compose_project) -> None:
    ctx, _, out = compose_project
    if "prometheus" not in ctx.components:
        return
    promtool = need("promtool")
    checked = subprocess.run(
        [promtool, "check", "config", str(_localise(out))], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rules found" in checked.stdout + checked.stderr  # the rule files were found and checked too
    rules = sorted((out / "config/prometheus/rules").glob("*.yml"))
    checked = subprocess.run([promtool, "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_required_alert_exists(compose_project) -> None:
    ctx, _, out = compose_project
    if "prometheus" not in ctx.components:
        return
    names = {
        r["alert"]
        for f in (out / "config/prometheus/rules").glob("*.yml")
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
    }
    required = {"ComponentDown", "GatewayErrorRateHigh", "GatewayLatencyP95High", "MonthlyBudget80Percent"}
    assert required | {"LedgerRowsDropped", "DiskSpaceLow"} <= names
    down = (out / "config/prometheus/rules/components.yml").read_text()
    assert all(f'job="{c.name}"' in down for c in ctx.components.values() if c.metrics)


def test_dashboards_are_valid_and_their_queries_parse(tmp_path: Path) -> None:
    boards = {name: json.loads(text) for name, text in dashboards().items()}
    assert set(boards) == {f"{n}.json" for n in ("overview", "gateway", "cost", "knowledge", "system")}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    exprs = []
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "prometheus" and set(panel["gridPos"]) == {
                "x",
                "y",
                "w",
                "h",
            }
            exprs += [t["expr"] for t in panel["targets"]]
    # promtool parses every panel query as PromQL (as recording rules).
    rules = {
        "groups": [
            {"name": "dash", "rules": [{"record": f"dash:q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dash.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run([need("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_and_alerts_use_the_labs_metric_names() -> None:
    from ailab.observability.metrics import Metrics

    known = {m.name for m in Metrics().registry.collect()}
    text = "".join(dashboards().values()) + "".join(static_rules().values())
    import re

    used = {m.removesuffix("_total").removesuffix("_bucket") for m in re.findall(r"\bailab_[a-z_]+", text)}
    assert used <= known, used - known
