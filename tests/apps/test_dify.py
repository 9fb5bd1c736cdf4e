"""The Dify export (the structure Dify 1.1.3's importer checks, at its DSL version) and the provisioning
job, against a loopback server that speaks the console API endpoints it calls (no Dify runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ailab.apps import load_files
from ailab.apps.dify import DIFY_TAG, DSL_VERSION, PLUGIN, PROVIDER, export_app
from ailab.apps.dify_provision import Settings, provision
from ailab.cli.main import app as cli
from tests.apps.dify_server import FakeDify, importer_problem, make_app
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.upstreams.harness import ServerThread

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"
REQUIRED_MODEL_CONFIG = {
    "opening_statement",
    "suggested_questions",
    "suggested_questions_after_answer",
    "speech_to_text",
    "text_to_speech",
    "retriever_resource",
    "annotation_reply",
    "more_like_this",
    "sensitive_word_avoidance",
    "external_data_tools",
    "model",
    "user_input_form",
    "dataset_query_variable",
    "pre_prompt",
    "agent_mode",
    "prompt_type",
    "chat_prompt_config",
    "completion_prompt_config",
    "dataset_configs",
    "file_upload",
}


def examples():
    apps = load_files(sorted(EXAMPLES.glob("*.yaml")))
    assert apps.problems == []
    return apps.apps


def test_the_dsl_version_is_the_pinned_dify_images() -> None:
    from ailab.stack.catalog.dify import TAG

    # Dify 1.1.3's api/services/app_dsl_service.py: CURRENT_DSL_VERSION = "0.1.5"
    assert TAG == DIFY_TAG == "1.1.3" and DSL_VERSION == "0.1.5"


def test_each_example_exports_what_difys_importer_requires() -> None:
    for name, spec in examples().items():
        doc, _ = export_app(spec, {"docs": "d-1", "sql-schema": "d-2"})
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        parsed = yaml.safe_load(text)
        assert importer_problem(parsed) is None
        assert parsed["version"] == "0.1.5" and isinstance(parsed["version"], str)
        assert parsed["kind"] == "app"
        assert parsed["app"]["mode"] == "chat" and parsed["app"]["name"] == name
        dep = parsed["dependencies"][0]
        assert dep["type"] == "marketplace"
        assert dep["value"]["marketplace_plugin_unique_identifier"].startswith(f"{PLUGIN}:")
        mc = parsed["model_config"]
        assert set(mc) >= REQUIRED_MODEL_CONFIG, REQUIRED_MODEL_CONFIG - set(mc)
        assert mc["model"]["provider"] == PROVIDER == "langgenius/openai_api_compatible/openai_api_compatible"
        assert mc["model"]["name"] == spec.model and mc["model"]["mode"] == "chat"
        assert mc["prompt_type"] == "simple" and "{{sources}}" not in mc["pre_prompt"]
        assert "workflow" not in parsed  # a chat app carries model_config, not a graph


def test_rag_apps_point_at_their_datasets_and_variables_become_inputs() -> None:
    apps = examples()
    doc, notes = export_app(apps["docs-qa"], {"docs": "ds-docs"})
    ds = doc["model_config"]["dataset_configs"]
    assert ds["datasets"]["datasets"] == [{"dataset": {"enabled": True, "id": "ds-docs"}}]
    assert ds["top_k"] == 5 and ds["retrieval_model"] == "multiple"
    assert doc["model_config"]["retriever_resource"] == {"enabled": True}
    form = doc["model_config"]["user_input_form"]
    assert form[0]["text-input"]["variable"] == "audience" and form[0]["text-input"]["required"] is False
    assert "{{audience}}" in doc["model_config"]["pre_prompt"] and notes == []
    _, notes = export_app(apps["sql-helper"])
    assert any("sql-schema" in n for n in notes) and any("run_readonly_query" in n for n in notes)


def test_structured_output_goes_to_the_model_parameters() -> None:
    doc, _ = export_app(examples()["meeting-notes"])
    params = doc["model_config"]["model"]["completion_params"]
    assert params["temperature"] == 0 and params["response_format"] == "json_schema"
    assert json.loads(params["json_schema"])["name"] == "meeting_notes"


def test_cli_export_writes_the_dsl(tmp_path: Path) -> None:
    cfg = tmp_path / "ailab.yaml"
    cfg.write_text(yaml.safe_dump({"apps_dir": str(EXAMPLES)}))
    out = tmp_path / "docs-qa.yml"
    args = ["apps", "export", "docs-qa", "--to", "dify", "-c", str(cfg), "--out", str(out)]
    r = CliRunner().invoke(cli, [*args, "--dataset", "docs=abc", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(out.read_text())
    assert doc["model_config"]["dataset_configs"]["datasets"]["datasets"][0]["dataset"]["id"] == "abc"
    bad = CliRunner().invoke(
        cli, ["apps", "export", "nope", "-c", str(cfg), "--data-dir", str(tmp_path / "d")]
    )
    assert bad.exit_code == 2 and "no app named 'nope'" in bad.output


def test_provisioning_wires_dify_to_the_lab_once(make_gateway, openai_upstream) -> None:
    gw = make_gateway(
        {
            "model_list": [
                model("chat", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
            ],
            "apps_dir": str(EXAMPLES),
        }
    )
    state = FakeDify()
    dify = ServerThread(make_app(state)).start()
    try:
        s = Settings(dify.url, gw.url, MASTER, "sk-lab-dify", "admin@ailab.local", "pw-123456", wait_s=10)
        first = provision(s)
        assert state.admin is not None and state.admin["email"] == "admin@ailab.local"
        assert [p.split(":")[0] for p in state.plugins] == [PLUGIN]
        assert [(m["model"], m["provider"]) for m in state.models] == [("chat", PROVIDER)]
        creds = state.models[0]["credentials"]
        assert creds["endpoint_url"] == f"{gw.url}/v1" and creds["api_key"] == "sk-lab-dify"
        assert state.knowledge_apis[0]["settings"] == {
            "endpoint": f"{gw.url}/api/apps/dify",
            "api_key": "sk-lab-dify",
        }
        by_name = {d["name"]: d for d in state.datasets}
        assert set(by_name) == {"ailab-docs", "ailab-sql-schema"}
        assert by_name["ailab-docs"]["external_knowledge_id"] == "docs"
        assert sorted(d["app"]["name"] for d in state.imported) == ["docs-qa", "meeting-notes", "sql-helper"]
        docs_qa = next(d for d in state.imported if d["app"]["name"] == "docs-qa")
        ids = [x["dataset"]["id"] for x in docs_qa["model_config"]["dataset_configs"]["datasets"]["datasets"]]
        assert ids == [by_name["ailab-docs"]["id"]]
        assert "app docs-qa" in first.created
        again = provision(s)  # the job runs after every `up`: nothing is made twice
        assert again.created == ["model chat"]  # credentials are re-sent (a rotated key takes effect)
        assert len(state.imported) == 3 and len(state.datasets) == 2 and len(state.knowledge_apis) == 1
        assert "POST /setup" in state.calls and state.calls.count("POST /plugin/install/marketplace") == 1
    finally:
        dify.stop()
