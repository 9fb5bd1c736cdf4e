"""The console in a real browser: Playwright driving Debian's Chromium against a real `ailab up` with a
loopback OpenAI upstream. Every page renders with data, logs no JavaScript error and has no serious or
critical axe-core violation; a key made in the console works with the openai SDK and its request shows up
in Requests and Usage with its cost; revoking it stops it; a `user` is kept out of administrators' pages.
Screenshots land in docs/console/ (docs/console.md shows them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.console.conftest import PASSWORD
from tests.labproc import run_lab
from tests.upstreams import openai_server

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (make test-deps installs it)", allow_module_level=True)

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
PAGES = [
    "/console/",
    "/console/usage",
    "/console/requests",
    "/console/keys",
    "/console/models",
    "/console/knowledge",
    "/console/playground",
    "/console/account",
    "/console/people",
    "/console/audit",
    "/console/secrets",
    "/console/stack",
]
ADMIN_PAGES = ["/console/people", "/console/audit", "/console/secrets", "/console/stack"]
WAIT_MS = 20_000
# A browser and a real lab on a shared 2-core box: slower than a unit test, so a roomier limit.
pytestmark = pytest.mark.timeout(300)
PHONE_WIDTH = 390


@dataclass
class LiveLab:
    url: str
    users: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _config(upstream: str) -> dict[str, Any]:
    return {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{upstream}/v1", api_key=UPSTREAM_KEY),
            model("gpt-4o", "openai/gpt-4o", f"{upstream}/v1", api_key=UPSTREAM_KEY),
            model(
                "local",
                "openai/llama-local",
                f"{upstream}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"cost_per_hour": 1.2},
            ),
            model(
                "embed",
                "openai/text-embedding-3-small",
                f"{upstream}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"mode": "embedding"},
            ),
        ],
        "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.02},
        "knowledge": {"embedding_model": "embed", "chat_model": "gpt"},
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveLab]:
    up = start_upstream("openai", openai_server.make_app)
    tmp = tmp_path_factory.mktemp("console-lab")
    cfg = tmp / "ailab.yaml"
    cfg.write_text(yaml.safe_dump(_config(up.url)))
    proc, url = run_lab(cfg, tmp / "data")
    lab = LiveLab(url)
    try:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
        project = admin.post("/api/projects", json={"name": "research"}).json()["id"]
        for name, role in (("root", "admin"), ("usr", "user")):
            r = admin.post("/api/users", json={"username": name, "role": role, "password": PASSWORD})
            lab.users[name] = r.json()["id"]
            admin.put(f"/api/projects/{project}/members/{lab.users[name]}")
            key = admin.post("/api/keys", json={"user_id": lab.users[name], "name": f"{name}-key"}).json()
            lab.keys[name] = key["key"]
        admin.put(
            f"/api/users/{lab.users['usr']}/limits",
            json={"max_budget_usd": "5", "budget_duration": "monthly"},
        )
        for who in ("root", "usr"):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=lab.keys[who])
            for m in ("gpt", "gpt-4o", "local"):
                client.chat.completions.create(
                    model=m, messages=[{"role": "user", "content": f"hello from {who}"}]
                )
        yield lab
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        up.server.stop()


@pytest.fixture(scope="module")
def browser(live: LiveLab) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page whose JavaScript errors (console errors, uncaught exceptions, failed requests) are kept."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Any) -> None:
        # A navigation cancels what the page still had in flight (e.g. the overview's poll): not an error.
        if request.failure != "net::ERR_ABORTED":
            self.errors.append(f"{request.url}: {request.failure}")


def _open(browser: Any, live: LiveLab, who: str, **ctx: Any) -> Watched:
    context = browser.new_context(base_url=live.url, **ctx)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/console/login")
    page.fill("#username", who)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/$"))
    return Watched(page)


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def admin_page(browser, live) -> Iterator[Watched]:
    w = _open(browser, live, "root", viewport={"width": 1280, "height": 900})
    yield w
    w.page.context.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_without_errors_and_is_accessible(admin_page, path):
    w, page = admin_page, admin_page.page
    w.errors.clear()
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    page.wait_for_load_state("networkidle")
    assert page.locator("main h1").first.inner_text().strip(), path
    assert page.locator("main table, main form, main .tiles").count() > 0, path
    assert _axe(page) == [], path
    assert w.errors == []


def test_overview_usage_and_api_docs_show_data(admin_page):
    w, page = admin_page, admin_page.page
    w.errors.clear()
    page.goto("/console/")
    assert page.locator("text=gpt").first.is_visible()
    assert page.locator("[data-metric=rps]").inner_text() != ""
    page.wait_for_function("document.querySelector('#live').getAttribute('hx-trigger') === 'every 5s'")
    _shot(page, "overview")
    page.goto("/console/usage?range=24h&by=model")
    page.wait_for_selector("#chart-cost .u-over")
    _shot(page, "usage")
    page.goto("/console/models")
    _shot(page, "models")
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info")
    page.goto("/redoc")
    page.wait_for_selector("redoc [role=navigation], .api-content", timeout=WAIT_MS)
    assert w.errors == []


def test_key_made_in_console_works_is_metered_and_revoked(browser, live):
    w = _open(browser, live, "usr", viewport={"width": 1280, "height": 900})
    page = w.page
    page.goto("/console/keys")
    page.fill("#create-key input[name=name]", "browser-key")
    page.select_option("#create-key select[name=models]", ["gpt"])
    page.fill("#create-key input[name=max_budget_usd]", "2")
    page.select_option(
        "#create-key select[name=budget_duration]", "monthly"
    )  # within usr's own $5 monthly: limits only narrow
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#secret:not([hidden])")
    secret = page.inner_text("#secret-value").strip()
    assert secret.startswith("sk-")
    _shot(page, "keys")
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret)
    reply = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "from the console"}]
    )
    assert reply.choices[0].message.content == "echo: from the console"
    with pytest.raises((openai.PermissionDeniedError, openai.NotFoundError)):  # the model scope holds
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    # The request appears in Requests (the writer flushes every 20 ms: reload until it is there).
    page.goto("/console/requests")
    for _ in range(50):
        if page.locator("#requests tbody tr", has_text="browser-key").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    row = page.locator("#requests tbody tr", has_text="browser-key").filter(has_text="200").first
    assert "$" in row.inner_text()
    page.goto("/console/usage?range=1h&by=key")
    usage_row = page.locator("table.grid tbody tr", has_text="browser-key").first
    assert "$" in usage_row.inner_text()

    page.goto("/console/keys")
    page.once("dialog", lambda d: d.accept())
    page.locator("#keys tr", has_text="browser-key").locator("button", has_text="Revoke").click()
    page.wait_for_selector("#keys tr:has-text('browser-key')", state="detached")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "again"}])
    assert w.errors == []


def test_knowledge_upload_inspect_and_ask(browser, live, tmp_path):
    w = _open(browser, live, "root", viewport={"width": 1280, "height": 1000})
    page = w.page
    page.goto("/console/knowledge")
    page.fill("#create-collection input[name=name]", "handbook")
    page.click("#create-collection button[type=submit]")
    page.wait_for_selector("#collections td:has-text('handbook')")
    good = tmp_path / "vacation.md"
    good.write_text("# Vacation policy\n\nEveryone gets 30 days of paid vacation per year.\n")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7 this is not really a pdf")
    page.set_input_files("#upload input[type=file]", [str(good), str(bad)])
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#upload-results li.error")
    assert "vacation.md: ingested" in page.inner_text("#upload-results")
    failed = page.inner_text("#upload-results li.error")
    assert failed.startswith("broken.pdf: failed — ") and len(failed) > len("broken.pdf: failed — ")
    assert page.get_attribute("#upload-progress", "value") == "100"

    page.fill("#inspect input[name=query]", "paid vacation days")
    page.click("#inspect button[type=submit]")
    page.wait_for_selector("#hits:not([hidden]) tbody tr")
    first = page.inner_text("#hits tbody tr")
    assert "vacation" in first.lower() and "#1" in first
    _shot(page, "knowledge")

    page.fill("#ask input[name=question]", "How many vacation days?")
    page.click("#ask button[type=submit]")
    page.wait_for_selector("#answer[data-done='1']")
    assert page.inner_text("#answer").strip()
    assert page.locator("#citations li").count() >= 1
    assert w.errors == []


def test_playground_streams_two_models_side_by_side(browser, live):
    w = _open(browser, live, "usr", viewport={"width": 1280, "height": 900})
    page = w.page
    page.goto("/console/playground")
    page.select_option("#play select[name=model]", "gpt")
    page.select_option("#play select[name=model2]", "local")
    page.fill("#play textarea[name=message]", "tell me a story")
    page.click("#play button[type=submit]")
    page.wait_for_selector("#pane-1 .meta[data-done='1']")
    page.wait_for_selector("#pane-2 .meta[data-done='1']")
    assert "echo: tell me a story" in page.inner_text("#pane-1")
    meta = page.inner_text("#pane-2 .meta")
    assert "out tokens" in meta and "$" in meta and "TTFT" in meta
    _shot(page, "playground")
    assert w.errors == []


def test_user_is_kept_out_of_admin_pages_and_others_keys(browser, live):
    w = _open(browser, live, "usr", viewport={"width": 1280, "height": 900})
    page = w.page
    nav = page.inner_text("#nav")
    for label in ("Users & projects", "Audit log", "Secrets", "Stack"):
        assert label not in nav
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert "lacks permission" in page.inner_text("main")
    response = page.goto(f"/console/keys?user={live.users['root']}")
    assert response is not None and response.status == 403
    page.goto("/console/keys")
    keys = page.inner_text("#keys")
    assert "usr-key" in keys and "root-key" not in keys
    assert page.goto("/console/nowhere").status == 404
    assert "Not found" in page.inner_text("main")
    page.goto("/console/usage?range=24h&by=user")
    assert "root" not in page.inner_text("table.grid tbody")
    # Console errors here are the 403/404 documents themselves, which Chromium logs as failed loads.
    assert all("403" in e or "404" in e for e in w.errors), w.errors


def test_phone_width_and_keyboard(browser, live):
    phone = {"width": PHONE_WIDTH, "height": 844}
    w = _open(browser, live, "root", viewport=phone, is_mobile=True, has_touch=True)
    page = w.page
    assert not page.locator("#nav").is_visible()
    page.click("button.menu")
    assert page.locator("#nav").is_visible()
    _shot(page, "phone")
    for path in PAGES:  # nothing wider than the phone: wide tables scroll inside their own box
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH, path
    page.goto("/console/keys")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    for _ in range(40):  # every control is reachable by Tab
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "name":
            break
    assert page.evaluate("document.activeElement.name") == "name"
    assert w.errors == []


def test_admin_manages_people_budgets_secrets_and_verifies_the_audit_chain(browser, live):
    w = _open(browser, live, "root", viewport={"width": 1280, "height": 900})
    page = w.page
    page.goto("/console/people")
    page.fill("#add-user input[name=username]", "newbie")
    page.click("#add-user button[type=submit]")
    page.wait_for_selector("#secret:not([hidden])")
    assert len(page.inner_text("#secret-value").strip()) >= 12  # the generated password, shown once
    page.click("#secret button[data-reload]")
    page.wait_for_selector("#users td:text-is('newbie')")
    page.fill("#add-project input[name=name]", "ops")
    page.click("#add-project button[type=submit]")
    page.wait_for_selector("#projects td:text-is('ops')")
    row = page.locator("#projects tr", has_text="ops")
    with page.expect_navigation():
        row.locator("select").select_option(label="newbie")
    page.wait_for_selector("#projects tr:has-text('ops') >> text=newbie")
    page.select_option("#set-limits select[name=target]", label="user newbie")
    page.fill("#set-limits input[name=max_budget_usd]", "7.5")
    page.select_option("#set-limits select[name=budget_duration]", "weekly")
    with page.expect_navigation():
        page.click("#set-limits button[type=submit]")
    assert "$7.50 weekly" in page.locator("#users tr", has_text="newbie").inner_text()
    user_row = page.locator("#users tr", has_text="newbie")
    with page.expect_navigation():
        user_row.locator("button", has_text="Disable").click()
    assert "disabled" in page.locator("#users tr", has_text="newbie").inner_text()

    page.goto("/console/secrets")
    page.fill("#set-secret input[name=name]", "DEMO_TOKEN")
    page.fill("#set-secret input[name=value]", "s3cr3t-value-never-shown")
    with page.expect_navigation():
        page.click("#set-secret button[type=submit]")
    assert "DEMO_TOKEN" in page.inner_text("main")
    assert "s3cr3t-value-never-shown" not in page.content()

    page.goto("/console/audit")
    assert "user.create" in page.inner_text("main")
    page.click("#verify")
    page.wait_for_selector("#verify-result.ok")
    assert page.inner_text("#verify-result").startswith("chain intact")
    assert w.errors == []
