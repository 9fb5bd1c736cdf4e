"""Gateway checks: the lab's port, every upstream (reachable, key accepted), routing."""

from __future__ import annotations

import errno
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ailab.config import SECRET_REF
from ailab.gateway import Deployment, build_deployments, default_registry
from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn, worst
from ailab.ops.doctor.context import DoctorContext, http_problem
from ailab.secrets import SecretError

# -- port in use ----------------------------------------------------------------------------------------


@check("port", "The lab's port is free or served by this lab", "port-in-use")
def port_check(ctx: DoctorContext) -> Outcome:
    cfg = ctx.config.ailab
    run = ctx.run
    if run is not None:
        where = f"{run.host}:{run.port}"
        try:
            ctx.http.get(f"{run.url}/health/live")
        except httpx.HTTPError as exc:
            return warn(
                f"{where} belongs to this lab (pid {run.pid}, run file) but it does not answer "
                f"({http_problem(exc)})",
                "the lab is hung or still starting: wait, or stop it (kill the pid) and `ailab up` again",
            )
        moved = "" if run.port == cfg.port else f" (started with --port; the config says {cfg.port})"
        return passed(f"{where} is served by this lab (pid {run.pid}, ailab {run.version}){moved}")
    where = f"{cfg.host}:{cfg.port}"
    try:
        free = port_free(cfg.host, cfg.port)
    except OSError as exc:
        return fail(
            f"cannot listen on {where}: {exc.strerror}",
            "set ailab.host to an address of this machine (127.0.0.1 or 0.0.0.0)",
        )
    if free:
        return passed(f"{where} is free for `ailab up`")
    owner = listener(cfg.port)
    who = f" by {owner}" if owner else " by another process"
    return fail(
        f"{where} is in use{who}, and no lab of this data dir ({ctx.data_dir}) is running",
        f"stop that process, or start the lab on another port: `ailab up --port {cfg.port + 1}`",
    )


def port_free(host: str, port: int) -> bool:
    """True when `ailab up` could bind (host, port) now; OSError for an address this host does not have."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = "127.0.0.1" if host == "localhost" else host
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((bind_host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def listener(port: int) -> str | None:
    """`pid 123 (python -m http.server)` for the process listening on `port`, when /proc tells."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(_readlink(fd) in inodes for fd in fds):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return f"pid {proc.name} ({cmd.strip()[:80]})"
        except OSError:
            continue
    return None


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


# -- upstreams ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """The provider's cheapest authenticated call (its model list)."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()


def probe_for(dep: Deployment, key: str | None) -> Probe | None:
    base = (dep.api_base or "").rstrip("/")
    label = f"{dep.provider_label} {base}"
    if dep.provider == "openai":
        return Probe(label, f"{base}/models", {"Authorization": f"Bearer {key}"} if key else {})
    if dep.provider == "azure":
        version = dep.api_version or "2024-10-21"
        return Probe(label, f"{base}/openai/models?api-version={version}", {"api-key": key} if key else {})
    if dep.provider == "anthropic":
        root = base.removesuffix("/v1/messages").removesuffix("/v1")
        headers = {"anthropic-version": dep.api_version or "2023-06-01"}
        if key:
            headers["x-api-key"] = key
        return Probe(label, f"{root}/v1/models", headers)
    if dep.provider == "gemini":
        versioned = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
        return Probe(label, f"{versioned}/models", {"x-goog-api-key": key} if key else {})
    if dep.provider == "ollama":
        return Probe(label, f"{base}/api/tags", {"Authorization": f"Bearer {key}"} if key else {})
    return None  # the built-in embedder and plugins without a known probe


def run_probe(ctx: DoctorContext, probe: Probe) -> Outcome:
    try:
        resp = ctx.http.get(probe.url, headers=probe.headers)
    except httpx.HTTPError as exc:
        return fail(f"{probe.label}: unreachable ({http_problem(exc)})")
    if resp.status_code in (401, 403):
        return fail(f"{probe.label}: key rejected (HTTP {resp.status_code})")
    if resp.status_code >= 500:
        return fail(f"{probe.label}: upstream error (HTTP {resp.status_code})")
    if resp.status_code >= 400:
        return warn(f"{probe.label}: answered HTTP {resp.status_code} to its model list")
    return passed(f"{probe.label}: ok")


def _key(ctx: DoctorContext, dep: Deployment, problems: list[Outcome]) -> str | None:
    if not dep.api_key_ref:
        return dep.api_key
    try:
        store = ctx.secret_store()
        value = store.get(dep.api_key_ref) if store is not None else None
    except SecretError as exc:
        problems.append(fail(f"{dep.id}: {SECRET_REF}{dep.api_key_ref} unavailable ({exc})"))
        return None
    if value is None:
        problems.append(
            fail(
                f"{dep.id}: {SECRET_REF}{dep.api_key_ref} is not in the secret store",
                f"`ailab secrets set {dep.api_key_ref}`",
            )
        )
    return value


def probes(ctx: DoctorContext, problems: list[Outcome]) -> list[Probe]:
    """One probe per distinct (endpoint, key); groups that share an upstream share its probe."""
    groups = build_deployments(ctx.config, default_registry(), warn=lambda _: None)
    found: dict[tuple[str, str, tuple[tuple[str, str], ...]], Probe] = {}
    for deps in groups.values():
        for dep in deps:
            probe = probe_for(dep, _key(ctx, dep, problems))
            if probe is None:
                continue
            ident = (probe.label, probe.url, tuple(sorted(probe.headers.items())))
            seen = found.get(ident)
            names = (*seen.groups, dep.group) if seen else (dep.group,)
            found[ident] = Probe(probe.label, probe.url, probe.headers, names)
    return list(found.values())


@check("upstreams", "Every upstream answers and accepts its key", "upstream-unreachable")
def upstreams_check(ctx: DoctorContext) -> Outcome:
    problems: list[Outcome] = []
    todo = probes(ctx, problems)
    if not todo and not problems:
        if ctx.config.model_list:
            return skip("no upstream with a known probe (only built-in or plugin providers)")
        return _ollama_discovery(ctx)
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(todo)))) as pool:
        results = list(pool.map(lambda p: run_probe(ctx, p), todo))
    bad = [r for r in problems + results if r.status != "pass"]
    if not bad:
        return passed(f"{len(results)} upstream(s) answered and accepted their keys")
    saw = "; ".join(r.saw for r in bad)
    return worst(
        bad,
        f"{len(bad)} of {len(results) + len(problems)} upstream(s) in trouble: {saw}",
        "start the server (or fix its api_base); for 'key rejected' set the right key "
        "(`ailab secrets set NAME` for secret/NAME, or the env var the config reads)",
    )


def _ollama_discovery(ctx: DoctorContext) -> Outcome:
    cfg = ctx.config.ailab
    if not cfg.discover_ollama:
        return skip("no model_list and Ollama discovery is off: the gateway serves no models")
    out = run_probe(ctx, Probe(f"ollama {cfg.ollama_url}", f"{cfg.ollama_url.rstrip('/')}/api/tags"))
    if out.status == "pass":
        return passed(f"no model_list; models come from the Ollama at {cfg.ollama_url}, which answers")
    return warn(
        f"no model_list, and discovery found no Ollama ({out.saw})",
        "add models to ailab.yaml (model_list), or start Ollama (`ollama serve`)",
    )


# -- routing --------------------------------------------------------------------------------------------


@check("routing", "Aliases and fallbacks lead to served model groups", "routing-errors")
def routing_check(ctx: DoctorContext) -> Outcome:
    cfg = ctx.config
    groups = build_deployments(cfg, default_registry(), warn=lambda _: None)
    if not cfg.model_list:
        return skip("no model_list: nothing is routed by configuration")
    names = set(groups)
    aliases = cfg.router_settings.model_group_alias
    findings: list[Outcome] = []
    for alias, target in aliases.items():
        name = target if isinstance(target, str) else str(target.get("model", ""))
        if name not in names:
            findings.append(fail(f"alias {alias!r} points to {name!r}, which is not a served model group"))
    reachable = names | {
        a for a, t in aliases.items() if (t if isinstance(t, str) else t.get("model")) in names
    }
    for rule in cfg.router_settings.fallbacks:
        for src, targets in rule.items():
            for t in [src, *targets]:
                if t not in reachable:
                    findings.append(
                        fail(f"fallback {src!r} → {targets} names {t!r}, which has no deployment")
                    )
    chat = cfg.knowledge.chat_model
    if chat and chat not in reachable:
        findings.append(fail(f"knowledge.chat_model {chat!r} is not a served model group"))
    findings.extend(_cooldowns(ctx))
    if not findings:
        return passed(f"{len(names)} model group(s), {len(aliases)} alias(es): every name resolves")
    return worst(
        findings,
        "; ".join(f.saw for f in findings),
        "point aliases, fallbacks and knowledge.chat_model at a model_name that has a working "
        "model_list entry; a cooling deployment recovers after router_settings.cooldown_time",
    )


def _cooldowns(ctx: DoctorContext) -> list[Outcome]:
    samples = ctx.lab_metrics()
    if samples is None:
        return []
    cooling = sorted(
        labels.get("deployment", "?")
        for labels, value in samples.get("ailab_deployment_healthy", [])
        if value == 0
    )
    return [warn(f"deployment {d} is in cooldown (recent upstream failures)") for d in cooling]


CHECKS = [port_check, upstreams_check, routing_check]
