"""`ailab knowledge eval` and `POST /v1/knowledge/collections/{name}/eval` on a small labelled set with
known ranks: the numbers, the kept runs, --compare, and the --min-hit5 gate."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ailab.cli import app
from ailab.knowledge.evaluation import EvalError, first_right_rank, metrics, parse_questions
from tests.conftest import MASTER
from tests.knowledge.conftest import lab_config

DOCS = {
    "lamp.txt": "The brass lamp lamp lamp lamp lamp was polished by the keeper every evening.",
    "harbour.txt": "Boats in the harbour wait for the tide; one lamp hangs over the pier.",
    "bread.txt": "Sourdough bread needs flour, water, salt and a starter fed each morning.",
    "stars.txt": "Astronomers count stars through telescopes on cold mountain nights.",
}
# With BM25 (mode sparse) the ranks are: 1, 1, none (not in the collection), 2 (lamp.txt outranks it).
QUESTIONS = [
    {"question": "sourdough starter flour", "sources": ["bread.txt"]},
    {"q": "telescopes astronomers", "pages": ["stars.txt"]},
    {"question": "how do glaciers form", "sources": ["glaciers.txt"]},
    {"question": "lamp", "sources": ["harbour.txt"], "id": "q4"},
]
EXPECTED = {"hit@1": 0.5, "hit@5": 0.75, "mrr@10": 0.625}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def kb(write_config, tmp_path, monkeypatch) -> Path:
    config, data_dir = write_config("embedded")
    monkeypatch.setenv("AILAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AILAB_CONFIG", str(config))
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    code, out = invoke("ingest", str(docs), "-c", "kb")
    assert code == 0, out
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("# a comment line\n" + "\n".join(json.dumps(q) for q in QUESTIONS) + "\n\n")
    return qfile


def test_cli_eval_reports_the_expected_numbers_and_ranks(kb: Path) -> None:
    code, out = invoke("knowledge", "eval", "-c", "kb", str(kb), "--mode", "sparse", "--format", "json")
    assert code == 0, out
    run = json.loads(out)
    assert run["metrics"] == EXPECTED
    assert [q["rank"] for q in run["questions"]] == [1, 1, None, 2]
    assert run["questions"][3]["id"] == "q4"
    s = run["settings"]
    assert s["embedding_model"] == "embed" and s["fusion"]["mode"] == "sparse"
    assert s["chunking"] == {"chunk_tokens": 200, "overlap": 32} and s["reranker"] is None
    code, text = invoke("knowledge", "eval", "-c", "kb", str(kb), "--mode", "sparse")
    assert code == 0 and "hit@5 0.750" in text and "MRR@10 0.625" in text


def test_runs_are_kept_and_compared(kb: Path) -> None:
    invoke("knowledge", "eval", "-c", "kb", str(kb), "--mode", "sparse")
    code, out = invoke(
        "knowledge", "eval", "-c", "kb", str(kb), "--mode", "dense", "--compare", "last", "--format", "json"
    )
    assert code == 0, out
    run = json.loads(out)
    cmp = run["comparison"]
    assert cmp["metrics_before"] == EXPECTED and cmp["after"] == run["id"]
    assert cmp["settings_changed"]["fusion"]["before"]["mode"] == "sparse"
    assert set(cmp["delta"]) == {"hit@1", "hit@5", "mrr@10"}
    code, out = invoke("knowledge", "eval", "-c", "kb", "--list", "--format", "json")
    runs = json.loads(out)["runs"]
    assert len(runs) == 2 and runs[0]["metrics"] == EXPECTED and "questions" not in runs[0]
    code, out = invoke("knowledge", "eval", "-c", "kb", str(kb), "--compare", "20200101T000000-abcdef")
    assert code == 2 and "no evaluation run" in out


def test_min_hit5_gate(kb: Path) -> None:
    code, _ = invoke("knowledge", "eval", "-c", "kb", str(kb), "--mode", "sparse", "--min-hit5", "0.7")
    assert code == 0
    code, out = invoke("knowledge", "eval", "-c", "kb", str(kb), "--mode", "sparse", "--min-hit5", "0.8")
    assert code == 1 and "below --min-hit5 0.8" in out


def test_bad_question_files_are_refused_clearly(kb: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "sources": ["a"]}\n{"question": "no sources"}\n')
    code, out = invoke("knowledge", "eval", "-c", "kb", str(bad))
    assert code == 2 and "bad.jsonl line 2: 'sources'" in out
    code, out = invoke("knowledge", "eval", "-c", "missing", str(kb))
    assert code == 2 and "does not exist" in out


def test_ranks_count_documents_once_and_match_path_suffixes() -> None:
    ranked = ["/d/a.html", "/d/a.html", "/d/b.html", "/d/sub/c.html"]
    assert first_right_rank(ranked, ("c.html",)) == 3
    assert first_right_rank(ranked, ("sub/c.html",)) == 3
    assert first_right_rank(ranked, ("xa.html",)) is None
    assert metrics([1, 3, None, 7]) == {
        "hit@1": 0.25,
        "hit@5": 0.5,
        "mrr@10": round((1 + 1 / 3 + 1 / 7) / 4, 4),
    }
    with pytest.raises(EvalError, match="line 1: not JSON"):
        parse_questions(["{nope"])
    with pytest.raises(EvalError, match="no questions"):
        parse_questions(["", "# only a comment"])


@pytest.fixture
def gw(make_gateway, openai_upstream, tmp_path):
    cfg = lab_config(openai_upstream.url, "embedded", tmp_path)
    cfg.pop("general_settings")
    cfg.pop("ailab")
    return make_gateway(cfg)


def test_eval_over_http(gw) -> None:
    c = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60)
    assert c.post("/v1/knowledge/collections", json={"name": "kb"}).status_code == 201
    docs = [{"name": n, "text": t} for n, t in DOCS.items()]
    assert c.post("/v1/knowledge/collections/kb/documents", json={"documents": docs}).status_code == 200
    qs = [
        {"question": q.get("question", q.get("q")), "sources": q.get("sources", q.get("pages"))}
        for q in QUESTIONS
    ]
    r = c.post("/v1/knowledge/collections/kb/eval", json={"questions": qs, "mode": "sparse", "name": "t"})
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == EXPECTED
    r2 = c.post("/v1/knowledge/collections/kb/eval", json={"questions": qs, "compare": "last"})
    assert r2.status_code == 200 and r2.json()["comparison"]["before"] == r.json()["id"]
    listed = c.get("/v1/knowledge/collections/kb/evals").json()["data"]
    assert [x["id"] for x in listed] == [r.json()["id"], r2.json()["id"]]
    one = c.get(f"/v1/knowledge/collections/kb/evals/{r.json()['id']}").json()
    assert [q["rank"] for q in one["questions"]] == [1, 1, None, 2]
    assert c.get("/v1/knowledge/collections/kb/evals/../../x").status_code == 404
    assert c.get("/v1/knowledge/collections/kb/evals/nope").json()["error"]["code"] == "not_found"
    bad = c.post("/v1/knowledge/collections/kb/eval", json={"questions": [{"question": "x", "sources": []}]})
    assert bad.status_code in (400, 422) and "sources" in bad.text
    assert c.post("/v1/knowledge/collections/nope/eval", json={"questions": qs}).status_code == 404
    anon = httpx.post(f"{gw.url}/v1/knowledge/collections/kb/eval", json={"questions": qs})
    assert anon.status_code == 401


def test_the_shipped_example_sets_parse() -> None:
    root = Path(__file__).parents[2] / "examples" / "knowledge-eval"
    sets = {p.name: parse_questions(p.read_text().splitlines(), p.name) for p in root.glob("*.jsonl")}
    assert {n: len(q) for n, q in sets.items()} == {
        "pgdocs-word-sharing.jsonl": 32,
        "pgdocs-user-phrased.jsonl": 32,
        "pgdocs-user-heldout.jsonl": 35,
    }


def test_reindex_command(kb: Path) -> None:
    code, out = invoke("knowledge", "reindex", "-c", "kb", "--format", "json")
    assert code == 0, out
    info = json.loads(out)
    assert info["collection"] == "kb" and info["rows"] == 4 and info["index"].startswith("none (exact")
    code, out = invoke("knowledge", "reindex", "-c", "nope")
    assert code == 2 and "does not exist" in out
