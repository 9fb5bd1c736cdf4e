"""A key never outgrows its grant: keys made by keys are subsets of them, limits need budgets.manage to widen,
unknown model names are refused, and keys one may not see answer 404 like keys that do not exist."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from ailab.access.records import Limits
from tests.access.conftest import ACTOR, Lab


def _bearer(lab: Lab, token: str) -> httpx.Client:
    return httpx.Client(base_url=lab.gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _restricted(lab: Lab) -> str:
    _, token = lab.access.keys.create(
        ACTOR,
        user=lab.users["usr"],
        project=lab.projects["alpha"],
        models=["gpt"],
        expires_ms=int((time.time() + 86400) * 1000),
        limits=Limits(rpm=10, max_budget_pusd=Limits.usd_to_pusd("1"), budget_duration="monthly"),
    )
    lab.refresh()
    return token


def test_a_key_made_by_a_restricted_key_inherits_its_bounds(lab):
    parent = _restricted(lab)
    with _bearer(lab, parent) as c:
        made = c.post("/api/keys", json={"name": "child"})
    assert made.status_code == 201, made.text
    child = made.json()
    assert child["project_id"] == lab.projects["alpha"]
    assert child["allowed_models"] == ["gpt"]
    assert child["expires_ms"] is not None and child["expires_ms"] <= time.time() * 1000 + 86400_000
    assert child["rpm"] == 10 and child["max_budget_usd"] == "1" and child["budget_duration"] == "monthly"
    client = openai.OpenAI(base_url=lab.gw.base_url, api_key=child["key"], max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    "body",
    [
        {"models": ["gpt", "other"]},
        {"project_id": "beta"},
        {"expires_in_days": 30},
        {"rpm": 11},
        {"max_budget_usd": "2"},
        {"max_budget_usd": "1", "budget_duration": "daily"},
    ],
)
def test_a_restricted_key_cannot_mint_a_wider_key(lab, body):
    parent = _restricted(lab)
    if body.get("project_id") == "beta":
        body = {"project_id": lab.projects["beta"]}
    with _bearer(lab, parent) as c:
        r = c.post("/api/keys", json=body)
    assert r.status_code in (403, 409), r.text
    assert all(k.parent_id is None for k in lab.access.keys.keys(user_id=lab.users["usr"]))


def test_revoking_a_key_revokes_the_keys_it_made(lab):
    parent = _restricted(lab)
    with _bearer(lab, parent) as c:
        child = c.post("/api/keys", json={"name": "child"}).json()
        with _bearer(lab, child["key"]) as cc:
            grandchild = cc.post("/api/keys", json={"name": "grandchild"}).json()
    parent_id = lab.access.keys.keys(user_id=lab.users["usr"])[1].id
    with lab.client("usr") as c:
        assert c.delete(f"/api/keys/{parent_id}").status_code == 200
    for token in (child["key"], grandchild["key"]):
        assert (
            httpx.get(f"{lab.gw.base_url}/models", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )


def test_empty_models_means_no_model_and_omitted_means_all(lab):
    with lab.client("usr") as c:
        none = c.post("/api/keys", json={"models": []}).json()
        every = c.post("/api/keys", json={}).json()
    assert none["allowed_models"] == [] and every["allowed_models"] is None
    nothing = openai.OpenAI(base_url=lab.gw.base_url, api_key=none["key"], max_retries=0)
    assert [m.id for m in nothing.models.list()] == []
    with pytest.raises(openai.NotFoundError):
        nothing.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    everything = openai.OpenAI(base_url=lab.gw.base_url, api_key=every["key"], max_retries=0)
    assert {m.id for m in everything.models.list()} >= {"gpt", "other"}


def test_key_creation_refuses_models_that_are_not_served(lab):
    with lab.client("usr") as c:
        r = c.post("/api/keys", json={"models": ["gpt", "gtp-typo", "nope"]})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "'gtp-typo'" in message and "'nope'" in message and "'gpt'" not in message


def test_limits_on_a_new_key_need_budgets_manage_to_widen(lab):
    lab.access.identity.update_user(ACTOR, lab.users["usr"], limits=Limits(rpm=100))
    with lab.client("usr") as c:  # a user (no budgets.manage) with an rpm of 100
        assert c.post("/api/keys", json={"max_budget_usd": "1000"}).status_code == 403
        assert c.post("/api/keys", json={"tpm": 10}).status_code == 403
        assert c.post("/api/keys", json={"rpm": 1000}).status_code == 403
        assert c.post("/api/keys", json={"rpm": 50}).status_code == 201  # narrowing is fine
    with lab.client("root") as c:  # an administrator sets what it likes
        assert c.post("/api/keys", json={"max_budget_usd": "1000", "tpm": 10}).status_code == 201


def test_a_key_one_may_not_see_answers_like_a_missing_one(lab):
    bob_key = lab.access.keys.keys(user_id=lab.users["bob"])[0].id
    with lab.client("usr") as c:
        theirs = c.delete(f"/api/keys/{bob_key}")
        missing = c.delete("/api/keys/key_000000000000")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"].replace(bob_key, "X") == missing.json()["error"][
        "message"
    ].replace("key_000000000000", "X")
    assert lab.access.keys.key(bob_key).revoked_ms is None


def test_a_collection_one_may_not_see_answers_like_a_missing_one(lab):
    with lab.client("ana") as c:
        made = c.post(
            "/v1/knowledge/collections", json={"name": "alpha-kb", "project_id": lab.projects["alpha"]}
        )
        assert made.status_code == 201, made.text
    with lab.client("bea") as c:  # analyst of beta
        for path in ("/v1/knowledge/collections/{}", "/v1/knowledge/collections/{}/documents"):
            theirs, missing = c.get(path.format("alpha-kb")), c.get(path.format("no-such-kb"))
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json()["error"]["message"].replace("alpha-kb", "X") == missing.json()["error"][
                "message"
            ].replace("no-such-kb", "X")
        assert c.delete("/v1/knowledge/collections/alpha-kb").status_code == 404
