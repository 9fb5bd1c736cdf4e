"""Checks of the apps the stack runs for users: Dify, JupyterLab, code-server."""

from __future__ import annotations

import httpx

from ailab.ops.doctor.base import Outcome, check, fail, passed, skip, warn
from ailab.ops.doctor.context import DoctorContext, http_problem
from ailab.secrets import SecretError


def stack_secret(ctx: DoctorContext, key: str) -> str | None:
    """A stack secret's value (`stack.KEY`, generated at render time); the read is audited."""
    try:
        store = ctx.secret_store()
        return store.get(f"stack.{key}") if store is not None else None
    except SecretError:
        return None


def _get(ctx: DoctorContext, url: str, headers: dict[str, str] | None = None) -> httpx.Response | str:
    try:
        return ctx.http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return http_problem(exc)


# -- Dify apps not working ------------------------------------------------------------------------------


@check("dify", "Dify answers and its lab key is accepted by the gateway", "dify-apps-not-working")
def dify_check(ctx: DoctorContext) -> Outcome:
    if "dify" not in ctx.stack_components():
        return skip("Dify is not installed")
    url = ctx.component_url("dify")
    ping = _get(ctx, f"{url}/console/api/ping")
    if isinstance(ping, str):
        return fail(
            f"Dify at {url}: {ping}", "start the stack (`docker compose up -d`), then `ailab logs dify-api`"
        )
    if ping.status_code != 200:
        return fail(
            f"Dify at {url}: its API answers HTTP {ping.status_code} (behind the nginx front)",
            "`ailab logs dify-api`: usually the database migration or Redis password",
        )
    key = stack_secret(ctx, "LAB_KEY_DIFY")
    if key is None:
        return warn(
            f"Dify at {url} answers, but the stack has no lab key for it (LAB_KEY_DIFY)",
            "render the stack again (`ailab render compose`): it mints the key Dify's provider uses",
        )
    lab = ctx.lab_url
    if lab is None:
        return fail(
            f"Dify at {url} answers, but the gateway it calls is not running",
            "start the lab (`ailab up`, or the `ailab` service of the stack)",
        )
    models = _get(ctx, f"{lab}/v1/models", headers={"Authorization": f"Bearer {key}"})
    if isinstance(models, str):
        return fail(f"Dify answers; the gateway at {lab}: {models}")
    if models.status_code in (401, 403):
        return fail(
            f"the gateway rejects Dify's lab key (HTTP {models.status_code}): revoked or disabled",
            "`ailab secrets delete stack.LAB_KEY_DIFY`, render again, and paste the new key into Dify's "
            "OpenAI-API-compatible provider",
        )
    if models.status_code != 200:
        return fail(f"the gateway answers HTTP {models.status_code} to Dify's key")
    n = len(models.json().get("data") or [])
    return passed(f"Dify at {url} answers; its lab key reaches {n} model(s) at {lab}/v1")


# -- Jupyter kernels not starting -----------------------------------------------------------------------


@check("jupyter", "JupyterLab answers and has kernels to start", "jupyter-kernels")
def jupyter_check(ctx: DoctorContext) -> Outcome:
    if "jupyter" not in ctx.stack_components():
        return skip("JupyterLab is not installed")
    url = ctx.component_url("jupyter")
    api = _get(ctx, f"{url}/api")
    if isinstance(api, str):
        return fail(
            f"JupyterLab at {url}: {api}", "start it (`ailab up --runtime native`), then `ailab logs jupyter`"
        )
    token = stack_secret(ctx, "JUPYTER_TOKEN")
    headers = {"Authorization": f"token {token}"} if token else {}
    specs = _get(ctx, f"{url}/api/kernelspecs", headers=headers)
    if isinstance(specs, str):
        return fail(f"JupyterLab at {url}: /api/kernelspecs {specs}")
    if specs.status_code in (401, 403):
        return fail(
            f"JupyterLab at {url} rejects the stack's token (HTTP {specs.status_code})",
            "restart Jupyter from the stack so it reads JUPYTER_TOKEN from the secret store",
        )
    if specs.status_code != 200:
        return fail(f"JupyterLab at {url}: /api/kernelspecs answered HTTP {specs.status_code}")
    body = specs.json()
    kernels = sorted((body.get("kernelspecs") or {}).keys())
    if not kernels:
        return fail(
            f"JupyterLab at {url} has no kernel to start",
            "install one in Jupyter's environment: `pip install ipykernel` (then restart Jupyter)",
        )
    default = body.get("default")
    if default and default not in kernels:
        return fail(f"JupyterLab's default kernel {default!r} is not installed (has: {', '.join(kernels)})")
    return passed(f"JupyterLab at {url} answers; kernels: {', '.join(kernels)}")


# -- VS Code server unreachable -------------------------------------------------------------------------


@check("code-server", "code-server (VS Code in the browser) answers", "vscode-server-unreachable")
def code_server_check(ctx: DoctorContext) -> Outcome:
    if "code-server" not in ctx.stack_components():
        return skip("code-server is not installed")
    url = ctx.component_url("code-server")
    resp = _get(ctx, f"{url}/healthz")
    if isinstance(resp, str):
        return fail(
            f"code-server at {url}: {resp}",
            "code-server runs in compose / Kubernetes only: `docker compose up -d code-server`, "
            "then `ailab logs code-server`",
        )
    if resp.status_code != 200:
        return fail(f"code-server at {url}: /healthz answered HTTP {resp.status_code}")
    status = (resp.json() or {}).get("status", "?")
    return passed(f"code-server at {url} answers (status {status})")


CHECKS = [dify_check, jupyter_check, code_server_check]
