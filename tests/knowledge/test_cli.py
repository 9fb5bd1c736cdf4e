"""`ailab collections / ingest / search / ask / knowledge migrate` on a data dir taken from AILAB_DATA_DIR."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ailab.cli import app
from ailab.ledger import usage_report
from tests.knowledge.corpus import write_corpus


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_ingest_search_ask_migrate(write_config, tmp_path, monkeypatch):
    config, data_dir = write_config("embedded")
    monkeypatch.setenv("AILAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AILAB_CONFIG", str(config))
    write_corpus(tmp_path / "docs")

    docs = str(tmp_path / "docs")
    report = json.loads(run("ingest", docs, "-c", "kb", "--format", "json", "--allow-failures"))
    assert report["added"] == 5 and len(report["failed"]) == 2
    failing = CliRunner().invoke(app, ["ingest", docs, "-c", "kb"])  # two files fail: exit 1
    assert failing.exit_code == 1, failing.output
    assert "unchanged 5" in failing.stdout and "broken.pdf" in failing.stdout

    rows = json.loads(run("collections", "--format", "json"))
    assert [(r["name"], r["documents"], r["store"]) for r in rows] == [("kb", 5, "embedded")]

    hits = json.loads(run("search", "standby replays WAL", "-c", "kb", "-k", "2", "--format", "json"))
    assert len(hits) == 2 and hits[0]["source"].endswith("replication.pdf") and hits[0]["page"] == 2
    assert "replication.pdf" in run("search", "standby replays WAL", "-c", "kb")

    answer = json.loads(run("ask", "Who polished the lamp? [1]", "-c", "kb", "--format", "json"))
    assert answer["citations"][0]["cited"] and answer["citations"][0]["source"].endswith("notes.txt")

    moved = json.loads(
        run("knowledge", "migrate", "--from", "embedded", "--to", "milvus", "--format", "json")
    )
    assert moved == [{"collection": "kb", "vectors": 9}]  # 5 documents, 9 sections
    hits = json.loads(run("search", "standby replays WAL", "-c", "kb", "--format", "json"))
    assert hits[0]["source"].endswith("replication.pdf")

    from ailab.db import make_engine, sqlite_url

    rows = {r.name: r for r in usage_report(make_engine(sqlite_url(data_dir)), "model")}
    assert rows["embed"].requests >= 4 and rows["gpt"].requests == 1  # the CLI's calls are ledgered too

    bad = CliRunner().invoke(app, ["search", "x", "-c", "missing"])
    assert bad.exit_code == 2 and "does not exist" in bad.output
