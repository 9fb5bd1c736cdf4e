"""Secrets are generated once into the lab's secret store; lab keys are real keys of the lab."""

from __future__ import annotations

from pathlib import Path

from ailab.config import load_config
from ailab.stack.catalog import expand, select
from ailab.stack.secrets import open_stack_secrets, specs_for, store_name


def test_generated_once_and_lab_keys_authenticate(tmp_path: Path) -> None:
    loaded = load_config(None, tmp_path / "data")
    specs = specs_for(select(expand(["all"])))
    with open_stack_secrets(loaded) as stack:
        first = stack.ensure(specs)
        assert {s.key for s in stack.missing} == {"CLOUDFLARE_TUNNEL_TOKEN", "TS_AUTHKEY"}
        assert stack.store.get(store_name("POSTGRES_PASSWORD")) == first["POSTGRES_PASSWORD"]
    with open_stack_secrets(loaded) as stack:
        assert stack.ensure(specs) == first  # never regenerated
    from ailab.access.service import AccessService
    from ailab.db import open_database

    engine = open_database(loaded)
    try:
        keys = AccessService.build(engine, loaded.config.access).keys
        found = keys.find(first["LAB_KEY_OPEN_WEBUI"])
        assert found is not None and found.name == "stack:LAB_KEY_OPEN_WEBUI"
    finally:
        engine.dispose()
