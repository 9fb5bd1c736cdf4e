"""Apps as code: the models, the loader (ailab.yaml and the apps folder) and their precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ailab.apps import AppRequestError, AppSpec, load_apps
from ailab.apps.prompt import render_system, rewrite_body, variables_of
from ailab.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_examples_load_without_a_problem(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ailab.yaml", {"apps_dir": str(EXAMPLES)})
    apps = load_apps(load_config(cfg, tmp_path / "data"))
    assert apps.problems == []
    assert sorted(apps.apps) == ["docs-qa", "meeting-notes", "sql-helper"]
    assert apps.apps["docs-qa"].knowledge is not None
    assert apps.apps["docs-qa"].knowledge.collections == ["docs"]
    fmt = apps.apps["meeting-notes"].parameters.response_format
    assert fmt is not None and fmt["type"] == "json_schema"
    assert apps.apps["sql-helper"].tools[0].function.name == "run_readonly_query"


def test_apps_come_from_the_config_and_the_default_folder(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "ailab.yaml",
        {"apps": [{"name": "inline", "model": "gpt"}], "model_list": []},
    )
    write(tmp_path / "apps" / "filed.yaml", {"model": "gpt", "system_prompt": "hi"})  # name: the file's
    loaded = load_config(cfg, tmp_path / "data")
    assert loaded.warnings == []  # apps and apps_dir are known keys
    apps = load_apps(loaded)
    assert apps.problems == []
    assert sorted(apps.apps) == ["filed", "inline"]
    assert apps.sources["filed"].endswith("filed.yaml")


def test_a_mapping_of_apps_in_the_config(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ailab.yaml", {"apps": {"helper": {"model": "gpt"}}})
    apps = load_apps(load_config(cfg, tmp_path / "data"))
    assert list(apps.apps) == ["helper"] and apps.problems == []


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ailab.yaml", {"apps": [{"name": "Bad Name", "model": "gpt"}]})
    write(
        tmp_path / "apps" / "broken.yaml",
        {
            "model": "gpt",
            "parameters": {"temperature": 7, "max_tokenz": 5},
            "knowledge": {"collections": [], "k": 0},
        },
    )
    (tmp_path / "apps" / "notyaml.yaml").write_text("a: [unclosed\n")
    apps = load_apps(load_config(cfg, tmp_path / "data"))
    text = [str(p) for p in apps.problems]
    assert any("ailab.yaml: apps[0]: name: use lower-case letters" in t for t in text), text
    broken = [p for p in apps.problems if p.where.endswith("broken.yaml")]
    fields = {p.field: p.message for p in broken}
    assert "less than or equal to 2" in fields["parameters.temperature"]
    assert fields["parameters.max_tokenz"] == "unknown key"
    assert "at least 1 item" in fields["knowledge.collections"]
    assert "greater than or equal to 1" in fields["knowledge.k"]
    assert any(p.where.endswith("notyaml.yaml") and "not valid YAML" in p.message for p in apps.problems)
    assert apps.apps == {}


def test_a_name_declared_twice_is_a_problem(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ailab.yaml", {"apps": [{"name": "twin", "model": "gpt"}]})
    write(tmp_path / "apps" / "twin.yaml", {"model": "other"})
    apps = load_apps(load_config(cfg, tmp_path / "data"))
    assert apps.apps["twin"].model == "gpt"
    assert "already declared in" in str(apps.problems[0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"system_prompt": "Hi {{who}}"}, "{{who}}, which are not declared under variables"),
        ({"system_prompt": "{{sources}}"}, "uses {{sources}} but the app has no knowledge"),
        ({"variables": {"sources": {}}}, "'sources' is reserved"),
        ({"parameters": {"response_format": {"type": "xml"}}}, "choose text, json_object or json_schema"),
        (
            {"parameters": {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}},
            "json_schema.schema: must be a JSON Schema object",
        ),
    ],
)
def test_template_and_parameter_checks(spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        AppSpec.model_validate({"name": "a", "model": "gpt", **spec})
    assert message in str(info.value)


def spec(**extra: object) -> AppSpec:
    return AppSpec.model_validate({"name": "a", "model": "gpt", **extra})


def test_variables_defaults_required_and_unknown() -> None:
    s = spec(
        system_prompt="For {{team}} in {{lang}}",
        variables={"team": {"default": "ops"}, "lang": {"description": "answer language"}},
    )
    assert variables_of(s, {"lang": "de"}) == {"team": "ops", "lang": "de"}
    with pytest.raises(AppRequestError, match=r"variables\.lang: required by app 'a' \(answer language\)"):
        variables_of(s, {})
    with pytest.raises(AppRequestError, match="has no variable 'nope'"):
        variables_of(s, {"lang": "de", "nope": "x"})
    with pytest.raises(AppRequestError, match="must be an object"):
        variables_of(s, ["de"])


def test_rendering_never_expands_a_value_and_places_sources() -> None:
    s = spec(system_prompt="Team {{team}}.", variables={"team": {}})
    assert render_system(s, {"team": "{{team}}"}, None) == "Team {{team}}."
    rag = spec(system_prompt="Be brief.", knowledge={"collections": ["docs"]})
    text = render_system(rag, {}, "[1] doc\nbody")
    assert text.startswith("Be brief.") and "Sources:\n\n[1] doc\nbody" in text and "[1] or [2][3]" in text
    placed = spec(system_prompt="Use:\n{{sources}}\nend", knowledge={"collections": ["docs"]})
    assert render_system(placed, {}, "[1] x") == "Use:\n[1] x\nend"


def test_the_body_the_app_sends() -> None:
    s = spec(
        system_prompt="sys",
        parameters={"temperature": 0, "response_format": {"type": "json_object"}},
        tools=[{"function": {"name": "lookup"}}],
        tool_choice="auto",
    )
    body = {
        "model": "app:a",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 1.5,
        "stream": True,
        "variables": {},
        "tools": [{"type": "function", "function": {"name": "mine"}}],
    }
    out = rewrite_body(s, body, "sys")
    assert out["model"] == "gpt" and out["temperature"] == 0 and out["stream"] is True
    assert out["messages"][0] == {"role": "system", "content": "sys"}
    assert [t["function"]["name"] for t in out["tools"]] == ["lookup", "mine"]
    assert out["tool_choice"] == "auto" and "variables" not in out
    with pytest.raises(AppRequestError, match="messages: required"):
        rewrite_body(s, {"messages": []}, "sys")


def test_a_container_config_carries_the_apps_folder_inline(tmp_path: Path) -> None:
    from ailab.apps.loader import inlined

    raw = {"apps_dir": str(EXAMPLES), "apps": {"inline": {"model": "gpt"}}}
    cfg = write(tmp_path / "ailab.yaml", raw)
    out = inlined(raw, load_config(cfg, tmp_path / "data"))
    assert "apps_dir" not in out
    assert [a["name"] for a in out["apps"]] == ["inline", "docs-qa", "meeting-notes", "sql-helper"]
    moved = write(tmp_path / "elsewhere" / "ailab.yaml", out)  # a config without the folder next to it
    apps = load_apps(load_config(moved, tmp_path / "data"))
    assert apps.problems == [] and len(apps.apps) == 4
