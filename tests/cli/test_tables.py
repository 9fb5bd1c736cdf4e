"""Tables are for people (names, UTC dates, fixed-point dollars, totals); json and csv keep the raw values."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from decimal import Decimal

import openai
import pytest
from typer.testing import CliRunner

from ailab.cli import app
from ailab.cli.table import decimals_for, usd, when
from tests.conftest import UPSTREAM_KEY, model
from tests.knowledge.conftest import write_config  # noqa: F401  (a fixture)
from tests.knowledge.corpus import write_corpus

runner = CliRunner()
DATE = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b")
PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


def run(*args: str) -> str:
    out = runner.invoke(app, list(args))
    assert out.exit_code == 0, out.output
    return out.stdout


def _use_key(base_url: str, token: str, name: str) -> None:
    """The gateway picks a new key up within a second; until then it answers 401."""
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
            return
        except openai.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling a condition with a deadline, not synchronising on time


@pytest.fixture
def lab(openai_upstream, make_gateway):
    """A priced model and an unpriced one, used by alice's key `ci-bot` in project `alpha`."""
    base = f"{openai_upstream.url}/v1"
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY, model_info=PRICES),
                model("local", "openai/llama-unknown-xyz", base, api_key=UPSTREAM_KEY),
            ]
        }
    )
    args = ["--config", str(gw.config_path), "--data-dir", str(gw.data_dir)]
    run("users", "add", "alice", *args)
    run("projects", "add", "alpha", *args)
    run("projects", "add-member", "alpha", "alice", *args)
    made = run(
        "keys", "create", "--user", "alice", "--project", "alpha", "--name", "ci-bot",
        "--budget", "25", "--budget-duration", "monthly", "--rpm", "60", *args,
    )  # fmt: skip
    token = made.split("key (shown once): ")[1].strip()
    _use_key(gw.base_url, token, "gpt")
    _use_key(gw.base_url, token, "local")
    gw.flush()
    return gw, args


def test_usage_table_names_money_unpriced_and_totals(lab):
    _, args = lab
    by_model = run("usage", *args)
    lines = by_model.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "REQUESTS"] and "COST" in lines[0]
    gpt = next(x for x in lines if x.startswith("gpt"))
    local = next(x for x in lines if x.startswith("local"))
    assert re.search(r"\$0\.\d+", gpt) and "E-" not in by_model
    assert local.split()[-2:] == ["—", "1"]  # unknown cost, not $0, and the count of unpriced requests
    total = next(x for x in lines if x.startswith("TOTAL"))
    counted = sum(int(x.split()[1]) for x in lines[1 : lines.index(total) - 1])
    assert int(total.split()[1]) == counted >= 2 and total.split()[-1] == "1"
    assert re.search(r"\$0\.\d+", total)
    places = {len(m) for m in re.findall(r"\$0\.(\d+)", by_model)}
    assert len(places) == 1  # one number of decimals for the whole cost column
    assert "1 request(s) had no known price" in by_model

    for by, name in (("user", "alice"), ("project", "alpha"), ("key", "ci-bot")):
        table = run("usage", *args, "--by", by)
        assert name in table and "TOTAL" in table
        assert not re.search(r"\b(usr|prj|key)_[0-9a-f]{6,}", table), table
        raw = json.loads(run("usage", *args, "--by", by, "--format", "json"))
        assert raw[0][by] != name and "TOTAL" not in json.dumps(raw)  # ids, no totals row


def test_usage_json_and_csv_keep_raw_values(lab):
    _, args = lab
    rows = {r["model"]: r for r in json.loads(run("usage", *args, "--format", "json"))}
    assert rows["local"]["cost_usd"] == "0" and rows["local"]["unpriced"] == 1
    assert Decimal(rows["gpt"]["cost_usd"]) > 0 and not rows["gpt"]["cost_usd"].startswith("$")
    parsed = list(csv.DictReader(io.StringIO(run("usage", *args, "--format", "csv"))))
    assert {"gpt", "local"} <= {r["model"] for r in parsed}  # (and "-": the 401s while the key loaded)
    assert all("$" not in r["cost_usd"] for r in parsed)


def test_users_projects_keys_audit_show_names_dates_limits(lab):
    _, args = lab
    users = run("users", "list", *args)
    alice = next(x for x in users.splitlines() if x.startswith("alice"))
    assert "alpha" in alice and "['" not in users and "prj_" not in alice.split("  ")[2]
    assert DATE.search(alice)
    projects = run("projects", "list", *args)
    assert "alice" in next(x for x in projects.splitlines() if x.startswith("alpha"))

    keys = run("keys", "list", *args)
    assert "REVOKED" not in keys and "None" not in keys
    bot = next(x for x in keys.splitlines() if x.startswith("ci-bot"))
    assert "alice" in bot and "alpha" in bot and "$25.00 monthly" in bot and " 60 " in bot
    assert "never" in bot and DATE.search(bot)
    raw = json.loads(run("keys", "list", *args, "--format", "json"))
    kid = next(k for k in raw if k["name"] == "ci-bot")
    assert kid["user_id"].startswith("usr_") or kid["user_id"] != "alice"
    assert isinstance(kid["created_ms"], int) and kid["max_budget_usd"] == "25"
    run("keys", "revoke", kid["id"], *args)
    revoked = run("keys", "list", "--include-revoked", *args)
    assert "REVOKED" in revoked.splitlines()[0] and len(DATE.findall(revoked.splitlines()[1])) == 2

    audit = run("audit", *args)
    assert "TIME (UTC)" in audit and DATE.search(audit) and "user.create" in audit
    created = next(x for x in audit.splitlines() if "key.create" in x)
    assert "ci-bot" in created and "user=alice" in created and "project=alpha" in created
    assert not re.search(r"\b1[6-9]\d{11}\b", audit)  # no epoch milliseconds
    entries = json.loads(run("audit", *args, "--format", "json"))
    assert isinstance(entries[0]["ts_ms"], int)


def test_version_and_help_without_bool():
    assert run("--version").strip().startswith("ailab ")
    assert run("--version") == run("version")
    for command in ([], ["audit"], ["keys", "list"], ["users", "add"], ["usage"]):
        helped = run(*command, "--help")
        assert "<bool>" not in helped and "--help" in helped


def test_search_prints_readable_results(write_config, tmp_path, monkeypatch):  # noqa: F811
    config, data_dir = write_config("embedded")
    monkeypatch.setenv("AILAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AILAB_CONFIG", str(config))
    write_corpus(tmp_path / "docs")
    run("ingest", str(tmp_path / "docs"), "-c", "kb", "--allow-failures")
    text = run("search", "standby replays WAL", "-c", "kb", "-k", "2")
    first, snippet = text.splitlines()[:2]
    assert re.match(r"1\. \d\.\d{4}  ", first) and "replication.pdf p.2" in first
    assert "\\n" not in text and "'" not in snippet[:4] and len(snippet) <= 3 + 162
    assert len(text.splitlines()) == 4  # two results, two lines each


def test_cell_formats():
    assert when(0) == "1970-01-01 00:00" and when(None) == ""
    assert decimals_for(["0.00000008", "0.00000615", None]) == 9
    assert decimals_for(["12.5", "0"]) == 2
    assert usd("0.00000615", 6) == "$0.000006" and usd(None) == "—" and usd("1234.5") == "$1,234.50"
