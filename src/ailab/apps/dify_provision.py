"""`ailab apps provision-dify`: after Dify is up, wire it to the lab through Dify's own console API.

1. first-run setup of the admin account (`GET/POST /console/api/setup`), then `POST /console/api/login`;
2. the OpenAI-API-compatible provider plugin (`/console/api/workspaces/current/plugin/list`,
   `…/plugin/install/marketplace`, `…/plugin/tasks/{id}`) and one model per lab model group the apps use
   (`POST /console/api/workspaces/current/model-providers/<provider>/models`), base URL = the gateway,
   key = the Dify component's lab key;
3. the lab as Dify "external knowledge" (`/console/api/datasets/external-knowledge-api`) and one external
   dataset per collection the apps use (`POST /console/api/datasets/external`);
4. each app of the lab, exported to DSL with those datasets, imported (`POST /console/api/apps/imports`,
   confirmed by `…/imports/{id}/confirm` when Dify asks).
Every step is idempotent: what exists (by name) is kept, so the job can run after each `ailab up`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ailab.apps.dify import PLUGIN, PLUGIN_IDENTIFIER, PROVIDER, dump, export_app
from ailab.apps.models import AppSpec


class ProvisionError(RuntimeError):
    """A step failed; the message names the step and Dify's (or the lab's) answer."""


@dataclass
class Settings:
    dify_url: str  # Dify's front (nginx), e.g. http://dify:80
    lab_url: str  # the lab as Dify reaches it, e.g. http://ailab:8765
    lab_admin_key: str  # reads the apps' definitions (apps.manage)
    lab_dify_key: str  # the key Dify calls the lab with (models, knowledge)
    admin_email: str
    admin_password: str
    admin_name: str = "Local AI Lab"
    plugin: str = PLUGIN_IDENTIFIER
    context_size: int = 8192
    wait_s: float = 300.0  # for Dify to answer, and for the plugin to install


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Console:
    """Dify's console API as the admin account (bearer token from the login)."""

    def __init__(self, s: Settings, client: httpx.Client) -> None:
        self.s = s
        self.http = client
        self.token = ""

    def call(self, method: str, path: str, step: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = self.http.request(method, f"{self.s.dify_url}/console/api{path}", headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise ProvisionError(f"{step}: Dify did not answer ({type(exc).__name__})") from None
        if r.status_code not in ok:
            raise ProvisionError(f"{step}: Dify answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else {}

    def wait_until_up(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.s.wait_s
        while True:
            try:
                r = self.http.get(f"{self.s.dify_url}/console/api/setup")
                if r.status_code == 200:
                    return dict(r.json())
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ProvisionError(f"setup: Dify at {self.s.dify_url} did not come up")
            time.sleep(2)  # Dify migrates its database on first start: minutes, not milliseconds

    def login(self, report: Report) -> None:
        s = self.s
        if self.wait_until_up().get("step") != "finished":
            setup = {"email": s.admin_email, "name": s.admin_name, "password": s.admin_password}
            self.call("POST", "/setup", "setup", json=setup)
            report.created.append(f"admin account {s.admin_email}")
        body = {"email": s.admin_email, "password": s.admin_password, "remember_me": True}
        got = self.call("POST", "/login", "login", json=body)
        token = (got.get("data") or {}).get("access_token") if isinstance(got, dict) else None
        if got.get("result") != "success" or not token:
            raise ProvisionError(f"login: Dify refused the admin account {s.admin_email}")
        self.token = token

    def paged(self, path: str, step: str) -> list[dict[str, Any]]:
        got = self.call("GET", path, step, params={"page": 1, "limit": 100})
        return list(got.get("data") or [])


def provision(s: Settings, client: httpx.Client | None = None) -> Report:
    report = Report()
    with client or httpx.Client(timeout=60) as http:
        specs = lab_apps(s, http)
        dify = Console(s, http)
        dify.login(report)
        ensure_plugin(dify, report)
        for group in sorted({spec.model for spec in specs}):
            add_model(dify, group, report)
        datasets = ensure_knowledge(dify, specs, report)
        existing = {a.get("name") for a in dify.paged("/apps", "apps")}
        for spec in specs:
            if spec.name in existing:
                report.kept.append(f"app {spec.name}")
                continue
            import_app(dify, spec, datasets, report)
    return report


def lab_apps(s: Settings, http: httpx.Client) -> list[AppSpec]:
    """The lab's apps, read through its admin API (the apps as the lab serves them)."""
    headers = {"Authorization": f"Bearer {s.lab_admin_key}"}
    out = []
    names = [a["name"] for a in _lab_get(http, f"{s.lab_url}/api/apps", headers)]
    for name in names:
        definition = _lab_get(http, f"{s.lab_url}/api/apps/{name}", headers)
        definition.pop("declared_in", None)
        out.append(AppSpec.model_validate(definition))
    return out


def _lab_get(http: httpx.Client, url: str, headers: dict[str, str]) -> Any:
    try:
        r = http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise ProvisionError(f"apps: the lab did not answer at {url} ({type(exc).__name__})") from None
    if r.status_code != 200:
        raise ProvisionError(f"apps: the lab answered {r.status_code} for {url}: {r.text[:200]}")
    return r.json()


def ensure_plugin(dify: Console, report: Report) -> None:
    got = dify.call("GET", "/workspaces/current/plugin/list", "plugin list")
    if any(p.get("plugin_id") == PLUGIN for p in got.get("plugins") or []):
        report.kept.append(f"plugin {PLUGIN}")
        return
    body = {"plugin_unique_identifiers": [dify.s.plugin]}
    task = dify.call("POST", "/workspaces/current/plugin/install/marketplace", "plugin install", json=body)
    if not task.get("all_installed") and task.get("task_id"):
        _wait_task(dify, str(task["task_id"]))
    report.created.append(f"plugin {PLUGIN}")


def _wait_task(dify: Console, task_id: str) -> None:
    deadline = time.monotonic() + dify.s.wait_s
    while True:
        got = dify.call("GET", f"/workspaces/current/plugin/tasks/{task_id}", "plugin install")
        status = (got.get("task") or {}).get("status")
        if status == "success":
            return
        if status == "failed" or time.monotonic() > deadline:
            raise ProvisionError(f"plugin install: task {task_id} ended {status or 'without a status'}")
        time.sleep(1)  # Dify installs plugins in its plugin daemon, asynchronously


def add_model(dify: Console, group: str, report: Report) -> None:
    s = dify.s
    body = {
        "model": group,
        "model_type": "llm",
        "credentials": {
            "mode": "chat",
            "endpoint_url": f"{s.lab_url}/v1",
            "api_key": s.lab_dify_key,
            "endpoint_model_name": group,
            "context_size": str(s.context_size),
            "max_tokens_to_sample": "4096",
            "function_calling_type": "tool_call",
            "stream_function_calling": "supported",
            "vision_support": "no_support",
            "stream_mode_delimiter": "\n\n",
        },
    }
    dify.call("POST", f"/workspaces/current/model-providers/{PROVIDER}/models", f"model {group}", json=body)
    report.created.append(f"model {group}")


def ensure_knowledge(dify: Console, specs: list[AppSpec], report: Report) -> dict[str, str]:
    """collection -> Dify dataset id, for every collection an app retrieves from."""
    wanted = sorted({c for spec in specs if spec.knowledge for c in spec.knowledge.collections})
    if not wanted:
        return {}
    s = dify.s
    apis = dify.paged("/datasets/external-knowledge-api", "external knowledge API")
    api = next((a for a in apis if a.get("name") == "ailab"), None)
    if api is None:
        body = {
            "name": "ailab",
            "settings": {"endpoint": f"{s.lab_url}/api/apps/dify", "api_key": s.lab_dify_key},
        }
        api = dify.call("POST", "/datasets/external-knowledge-api", "external knowledge API", json=body)
        report.created.append("external knowledge API ailab")
    known = {d.get("name"): d.get("id") for d in dify.paged("/datasets", "datasets")}
    out: dict[str, str] = {}
    for coll in wanted:
        name = f"ailab-{coll}"
        if name in known:
            out[coll] = str(known[name])
            report.kept.append(f"dataset {name}")
            continue
        body = {
            "external_knowledge_api_id": api["id"],
            "external_knowledge_id": coll,
            "name": name,
            "description": f"the lab's collection {coll} (searched by the lab)",
            "external_retrieval_model": {
                "top_k": 5,
                "score_threshold": 0.0,
                "score_threshold_enabled": False,
            },
        }
        made = dify.call("POST", "/datasets/external", f"dataset {name}", json=body)
        out[coll] = str(made["id"])
        report.created.append(f"dataset {name}")
    return out


def import_app(dify: Console, spec: AppSpec, datasets: dict[str, str], report: Report) -> None:
    doc, notes = export_app(spec, datasets, dify.s.plugin)
    body = {"mode": "yaml-content", "yaml_content": dump(doc)}
    got = dify.call("POST", "/apps/imports", f"import {spec.name}", ok=(200, 202), json=body)
    if got.get("status") == "pending":  # Dify asks to confirm a DSL of another version
        got = dify.call("POST", f"/apps/imports/{got['id']}/confirm", f"import {spec.name}")
    if got.get("status") not in ("completed", "completed-with-warnings"):
        raise ProvisionError(f"import {spec.name}: {got.get('error') or got.get('status')}")
    report.created.append(f"app {spec.name}")
    report.notes.extend(f"{spec.name}: {n}" for n in notes)
