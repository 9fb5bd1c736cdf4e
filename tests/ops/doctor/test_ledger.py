"""Ledger checks: spill files and lost rows, unpriced models."""

from __future__ import annotations

import httpx
import yaml

from ailab.config import load_config
from ailab.db import open_database
from ailab.ledger import LedgerWriter, PriceBook
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.ops.doctor.conftest import run_check, serving, spill_line


def test_spill_files_warn_until_the_next_start_reimports_them(lab_config):
    loaded = lab_config()
    loaded.data_dir.mkdir(parents=True)
    assert run_check(loaded, "ledger").status == "pass"

    (loaded.data_dir / "ledger-spill-1.jsonl").write_text(spill_line() + "\n" + spill_line() + "\n")
    result = run_check(loaded, "ledger")
    assert result.status == "warn"
    assert "2 ledger row(s) in 1 spill file(s)" in result.saw

    engine = open_database(loaded)  # what `ailab up` does at start: the writer re-imports spill files
    writer = LedgerWriter(engine, PriceBook(), loaded.data_dir)
    writer.start()
    writer.stop()
    engine.dispose()
    assert run_check(loaded, "ledger").status == "pass"


def test_a_killed_labs_journal_warns_until_the_next_start_replays_it(lab_config):
    from tests.ledger.test_writer import event

    loaded = lab_config()
    engine = open_database(loaded)
    dead = LedgerWriter(engine, PriceBook(), loaded.data_dir)  # never started: its rows only in the journal
    dead.submit(event(None))
    assert run_check(loaded, "ledger").status == "pass"  # its process still holds the segment
    dead.journal.detach().release()  # what the kernel does when the process is killed
    result = run_check(loaded, "ledger")
    assert result.status == "warn" and "1 usage journal segment(s)" in result.saw
    writer = LedgerWriter(engine, PriceBook(), loaded.data_dir)
    writer.start()
    writer.stop()
    engine.dispose()
    assert run_check(loaded, "ledger").status == "pass"


def test_a_damaged_spill_file_fails(lab_config):
    loaded = lab_config()
    loaded.data_dir.mkdir(parents=True)
    (loaded.data_dir / "ledger-spill-2.jsonl").write_text(spill_line() + "\n{truncated")
    result = run_check(loaded, "ledger")
    assert result.status == "fail" and "line 2" in result.saw


def test_rows_lost_by_the_running_lab_fail(make_gateway):
    gw = make_gateway({"model_list": []})
    loaded = serving(gw)
    result = run_check(loaded, "ledger")
    assert result.status == "pass" and "0 rows dropped" in result.saw
    gw.app.state.metrics.ledger_dropped.inc(3)  # what the writer counts when even the spill file failed
    result = run_check(loaded, "ledger")
    assert result.status == "fail" and "lost 3 ledger row(s)" in result.saw


def test_unpriced_model_warns_until_it_has_a_price(make_gateway, openai_upstream):
    entry = model("house", "openai/house-model-7b", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
    gw = make_gateway({"model_list": [entry]})
    loaded = load_config(gw.config_path, gw.data_dir)
    assert run_check(loaded, "cost-data").status == "pass"  # an empty ledger has nothing unpriced

    for _ in range(3):
        resp = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "house", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {MASTER}"},
        )
        assert resp.status_code == 200
    gw.flush()
    result = run_check(loaded, "cost-data")
    assert result.status == "warn"
    assert "house (3 of 3 requests)" in result.saw

    cfg = yaml.safe_load(gw.config_path.read_text())
    cfg["model_list"][0]["model_info"] = {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}
    gw.config_path.write_text(yaml.safe_dump(cfg))
    result = run_check(load_config(gw.config_path, gw.data_dir), "cost-data")
    assert result.status == "pass" and "house" in result.saw
