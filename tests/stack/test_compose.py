"""Acceptance: every rendered compose project validates against the Compose specification's schema."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import compose_spec
import jsonschema
import pytest

from ailab.stack.runtime import compose_command
from tests.stack.conftest import load_compose

SCHEMA = json.loads((Path(__file__).parent / "data" / "compose_spec.json").read_text())


def test_compose_validates_against_the_specification(compose_project) -> None:
    ctx, _, out = compose_project
    text = (out / "docker-compose.yml").read_text()
    errors = [
        f"{list(e.path)}: {e.message}"
        for e in jsonschema.Draft201909Validator(SCHEMA).iter_errors(load_compose(out))
    ]
    assert errors == []
    compose_spec.PyCompose.from_yaml(text)  # the newer specification, as implemented in Rust
    assert set(load_compose(out)["services"]) == set(ctx.components)


def test_the_validators_do_reject_an_invalid_file() -> None:
    bad = {"services": {"x": {"image": "a", "restart": "sometimes", "bogus": 1}}}
    assert list(jsonschema.Draft201909Validator(SCHEMA).iter_errors(bad))
    with pytest.raises(Exception):  # noqa: B017 (the binding raises its own error types)
        compose_spec.PyCompose.from_yaml("services:\n  x:\n    image: a\n    ports: {bogus: 1}\n")


def test_volumes_follow_the_data_map_and_secret_files_are_private(compose_project) -> None:
    ctx, secrets, out = compose_project
    doc = load_compose(out)
    for comp in ctx.components.values():
        for v in comp.volumes:
            assert doc["volumes"][f"{comp.name}_{v.name}"]["name"] == f"ailab_{comp.name}_{v.name}"
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
    for path in (out / "secrets").glob("*") if (out / "secrets").exists() else []:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = (out / "docker-compose.yml").read_text()
    assert not [k for k, v in secrets.items() if v in text], "a secret value leaked into the compose file"


@pytest.mark.parametrize(
    ("gpu", "image"), [("nvidia", "ollama/ollama:0.6.2"), ("amd", "ollama/ollama:0.6.2-rocm")]
)
def test_gpu_variants(gpu: str, image: str) -> None:
    import yaml

    from ailab.stack.compose import render_compose
    from tests.stack.conftest import context, fake_secrets

    ctx = context("phase1")
    ollama = yaml.safe_load(render_compose(ctx, fake_secrets(ctx), gpu).files["docker-compose.yml"][0])[
        "services"
    ]["ollama"]
    assert ollama["image"] == image
    if gpu == "nvidia":
        assert ollama["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    else:
        assert ollama["devices"] == ["/dev/kfd", "/dev/dri"]


def test_docker_runtime_shells_out_to_docker_compose(tmp_path: Path) -> None:
    cmd = compose_command(tmp_path, "up", "--detach")
    assert cmd[:2] == ["docker", "compose"]
    assert cmd[cmd.index("--file") + 1] == str(tmp_path / "docker-compose.yml")
    assert cmd[cmd.index("--env-file") + 1] == str(tmp_path / ".env")
    assert cmd[-2:] == ["up", "--detach"]
