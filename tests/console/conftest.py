"""A lab with an admin and a user (each with a key), served in process, and console clients signed in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, model

PASSWORD = "correct-horse-battery"


@dataclass
class ConsoleLab:
    gw: object
    users: dict[str, str] = field(default_factory=dict)  # username -> id
    keys: dict[str, str] = field(default_factory=dict)  # username -> API key
    key_ids: dict[str, str] = field(default_factory=dict)
    project: str = ""

    @property
    def state(self):
        return self.gw.app.state

    @contextmanager
    def signed_in(self, username: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.gw.url, timeout=20, follow_redirects=False) as c:
            r = c.post(
                "/console/login", data={"username": username, "password": PASSWORD, "next": "/console/"}
            )
            assert r.status_code == 303, r.text
            yield c


def lab_config(upstream_url: str) -> dict:
    return {
        "model_list": [
            model("gpt", "openai/gpt-4o-mini", f"{upstream_url}/v1", api_key=UPSTREAM_KEY),
            model(
                "local",
                "openai/llama-local",
                f"{upstream_url}/v1",
                api_key=UPSTREAM_KEY,
                model_info={"cost_per_hour": 1.2},
            ),
            model("mystery", "openai/unpriced-model-x", f"{upstream_url}/v1", api_key=UPSTREAM_KEY),
        ]
    }


def populate(state, lab: ConsoleLab) -> None:
    ident, keys = state.access.identity, state.access.keys
    lab.project = ident.create_project("test", "research").id
    for name, role in (("root", "admin"), ("usr", "user"), ("eve", "user"), ("ana", "analyst")):
        uid = ident.create_user("test", name, role, PASSWORD).id
        lab.users[name] = uid
        ident.add_member("test", lab.project, uid)
        key, token = keys.create("test", user=uid, project=lab.project, name=f"{name}-key")
        lab.keys[name], lab.key_ids[name] = token, key.id
    state.access.cache.load()


@pytest.fixture
def lab(openai_upstream, make_gateway) -> ConsoleLab:
    gw = make_gateway(lab_config(openai_upstream.url))
    out = ConsoleLab(gw)
    populate(gw.app.state, out)
    return out
