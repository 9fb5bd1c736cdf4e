"""A key limited to some models: told the same (OpenAI's 404 model_not_found) on /v1 and on the knowledge
routes, never shown the models it may not use, and never served by them through fallbacks."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.upstreams import openai_server

MSG = [{"role": "user", "content": "hi"}]
NOT_FOUND = "The model `{}` does not exist or you do not have access to it."


@pytest.fixture
def two():
    a = start_upstream("a", openai_server.make_app)
    b = start_upstream("b", openai_server.make_app)
    yield a, b
    a.server.stop()
    b.server.stop()


@pytest.fixture
def lab(two, make_gateway):
    a, b = two
    gw = make_gateway(
        {
            "model_list": [
                model("f500", "openai/cheap", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("embed", "openai/text-embedding-3-small", f"{a.url}/v1", api_key=UPSTREAM_KEY),
                model("pricey", "openai/dear", f"{b.url}/v1", api_key=UPSTREAM_KEY),
                model("secret-model", "openai/hidden", f"{b.url}/v1", api_key=UPSTREAM_KEY),
            ],
            "router_settings": {
                "num_retries": 0,
                "cooldown_time": 0,
                "fallbacks": [{"f500": ["pricey"]}],
                "model_group_alias": {"smart": "pricey"},
            },
            "knowledge": {"embedding_model": "embed", "chat_model": "f500"},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    user = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"})
    assert user.status_code == 201, user.text
    made = admin.post(
        "/api/keys", json={"user_id": user.json()["id"], "name": "k", "models": ["f500", "embed"]}
    )
    assert made.status_code == 201, made.text
    assert admin.post("/v1/knowledge/collections", json={"name": "kb"}).status_code == 201
    return gw, made.json()["key"]


def test_v1_and_knowledge_answer_alike_and_list_nothing_else(lab, two) -> None:
    gw, key = lab
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    for name in ("pricey", "no-such-model", "smart"):
        with pytest.raises(openai.NotFoundError) as exc:
            client.chat.completions.create(model=name, messages=MSG)
        assert exc.value.body["code"] == "model_not_found" and exc.value.body["param"] == "model"
        assert exc.value.body["message"] == NOT_FOUND.format(name)
        for other in {"pricey", "secret-model", "smart"} - {name}:
            assert other not in exc.value.response.text
    assert sorted(m.id for m in client.models.list()) == ["embed", "f500"]
    h = {"Authorization": f"Bearer {key}"}
    for name in ("pricey", "no-such-model"):
        r = httpx.post(
            f"{gw.url}/v1/knowledge/collections/kb/ask", json={"question": "q", "model": name}, headers=h
        )
        assert r.status_code == 404, r.text
        assert NOT_FOUND.format(name) in r.text and "secret-model" not in r.text
    assert two[1].up.requests("chat") == []


def test_long_model_names_are_not_echoed_whole(lab) -> None:
    gw, key = lab
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="x" * 100_000, messages=MSG)
    assert len(exc.value.response.text) < 400
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="f500", messages=MSG, tool_choice="y" * 100_000)  # type: ignore[arg-type]
    assert len(bad.value.response.text) < 600


def test_fallbacks_obey_the_key_scope(lab, two) -> None:
    gw, key = lab
    a, b = two
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="f500", messages=MSG, extra_body={"fallbacks": ["pricey"]})
    assert exc.value.body["param"] == "fallbacks" and "pricey" in exc.value.message
    for fallbacks in (["smart"], ["secret-model"]):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="f500", messages=MSG, extra_body={"fallbacks": fallbacks})
    # The configured fallback (f500 -> pricey) is skipped for this key: f500's failure is the answer.
    a.up.fail_next(status=500)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="f500", messages=MSG)
    assert failed.value.status_code == 502
    assert b.up.requests("chat") == []
    # The master key may use pricey, so the configured fallback serves it.
    a.up.fail_next(status=500)
    master = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    assert master.chat.completions.create(model="f500", messages=MSG).choices[0].message.content
    assert len(b.up.requests("chat")) == 1


def test_adapter_and_endpoint_errors_clip_user_input(lab) -> None:
    gw, _ = lab
    h = {"Authorization": f"Bearer {MASTER}"}
    r = httpx.get(f"{gw.base_url}/" + "p" * 20_000, headers=h)
    assert r.status_code == 404 and len(r.text) < 400
    from ailab.gateway.providers.anthropic_convert import to_anthropic
    from ailab.gateway.types import UpstreamError

    with pytest.raises(UpstreamError) as exc:
        to_anthropic({"messages": MSG, "tools": [{"type": "z" * 100_000}]}, "claude")
    assert exc.value.status == 400 and len(exc.value.message) < 300


def test_completions_and_model_retrieve_obey_the_scope(lab, two) -> None:
    gw, key = lab
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    for name in ("pricey", "secret-model", "smart"):
        with pytest.raises(openai.NotFoundError) as exc:
            client.completions.create(model=name, prompt="hi")
        assert exc.value.body["code"] == "model_not_found"
        with pytest.raises(openai.NotFoundError) as exc:
            client.models.retrieve(name)
        assert exc.value.body["message"] == NOT_FOUND.format(name)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="f500", prompt="hi", extra_body={"fallbacks": ["pricey"]})
    assert client.models.retrieve("f500").id == "f500"
    assert two[1].up.requests("completions") == []
