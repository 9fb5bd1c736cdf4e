"""A running lab with users of every role, two projects and a key each."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from ailab.access.records import Limits
from tests.conftest import UPSTREAM_KEY, model

ACTOR = "test"


@dataclass
class Lab:
    gw: object
    keys: dict[str, str] = field(default_factory=dict)  # role name -> API key
    users: dict[str, str] = field(default_factory=dict)  # name -> user id
    projects: dict[str, str] = field(default_factory=dict)  # name -> project id

    @property
    def access(self):
        return self.gw.app.state.access

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.gw.url, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=10
        )

    def refresh(self) -> None:
        self.access.cache.load()


@pytest.fixture
def lab(openai_upstream, make_gateway) -> Lab:
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
                model("other", "openai/gpt-4o", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY),
            ]
        }
    )
    lab = Lab(gw)
    ident, keys = lab.access.identity, lab.access.keys
    for name in ("alpha", "beta"):
        lab.projects[name] = ident.create_project(ACTOR, name).id
    for name, role, project in (
        ("root", "admin", "alpha"),
        ("ana", "analyst", "alpha"),
        ("usr", "user", "alpha"),
        ("bob", "user", "beta"),
        ("bea", "analyst", "beta"),
    ):
        uid = ident.create_user(ACTOR, name, role, "correct-horse-battery").id
        lab.users[name] = uid
        ident.add_member(ACTOR, project, uid)
        _, token = keys.create(ACTOR, user=uid, project=lab.projects[project], limits=Limits())
        lab.keys[name] = token
    lab.refresh()
    return lab
