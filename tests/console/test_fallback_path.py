"""A request that fell back: the ledger records its path (each deployment tried, in order, with each
failure's error) and the Requests detail page shows it beside deployment, retries, tokens, latency and cost;
a request served by its first call has no path."""

from __future__ import annotations

import html

from openai import OpenAI

from tests.conftest import UPSTREAM_KEY, model
from tests.console.conftest import ConsoleLab, populate


def _lab(openai_upstream, make_gateway) -> ConsoleLab:
    url = f"{openai_upstream.url}/v1"
    gw = make_gateway(
        {
            "model_list": [
                model("flaky", "openai/gpt-4o-mini", url, api_key=UPSTREAM_KEY),
                model("gpt", "openai/gpt-4o-mini", url, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0, "fallbacks": [{"flaky": ["gpt"]}]},
        }
    )
    lab = ConsoleLab(gw)
    populate(gw.app.state, lab)
    return lab


def _detail(lab: ConsoleLab, c, model_group: str) -> str:
    page = c.get(f"/console/requests?model={model_group}").text
    rid = page.split('href="/console/requests/')[1].split('"')[0]
    r = c.get(f"/console/requests/{rid}")
    assert r.status_code == 200
    return html.unescape(r.text)


def test_the_fallback_path_is_ledgered_and_shown(openai_upstream, make_gateway):
    lab = _lab(openai_upstream, make_gateway)
    client = OpenAI(base_url=f"{lab.gw.url}/v1", api_key=lab.keys["root"], max_retries=0)
    openai_upstream.up.fail_next(1, status=500)  # the first deployment's call fails
    client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    lab.gw.flush()
    flaky = next(d for d in lab.state.router.groups["flaky"])
    gpt = next(d for d in lab.state.router.groups["gpt"])
    with lab.signed_in("root") as c:
        page = _detail(lab, c, "flaky")  # ledgered under the group asked for, served by the fallback's
        assert f"{flaky.id} ✗500 → {gpt.id} ✓" in page
        assert "Retries / fallbacks</dt><dd>1</dd>" in page
        assert f"<dt>Deployment</dt><dd>{gpt.id}" in page
        plain = _detail(lab, c, "gpt")
    assert "served by its first call" in plain and "✗" not in plain
