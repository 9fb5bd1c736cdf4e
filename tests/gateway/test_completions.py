"""POST /v1/completions (legacy) and GET /v1/models/{id}, driven by the real `openai` SDK: passed through to
an OpenAI-compatible upstream, translated to chat for Anthropic, Gemini and Ollama; streaming too; answers
valid by OpenAI's schema; ledgered as endpoint `completions` with tokens and the stream flag."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from sqlalchemy import select

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.gateway import spec
from tests.upstreams import anthropic_server, gemini_server, ollama_server, openai_server

ADAPTERS = {
    "openai": (openai_server, "openai/gpt-3.5-turbo-instruct", "/v1"),
    "anthropic": (anthropic_server, "anthropic/claude-sonnet-4-5", ""),
    "gemini": (gemini_server, "gemini/gemini-2.5-flash", ""),
    "ollama": (ollama_server, "ollama/llama3.2", ""),
}


@pytest.fixture(params=list(ADAPTERS))
def lab(request, make_gateway) -> Iterator[tuple[str, object, openai.OpenAI]]:
    name = request.param
    server, provider_model, suffix = ADAPTERS[name]
    key = None if name == "ollama" else UPSTREAM_KEY
    running = start_upstream(name, server.make_app, api_key=key)
    gw = make_gateway(
        {
            "model_list": [model("text", provider_model, running.url + suffix, api_key=key)],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    yield name, gw, openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    running.server.stop()


def _rows(gw) -> list[dict]:
    gw.flush()
    with gw.app.state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.requests))]


def test_completions_unary_and_stream(lab) -> None:
    _, gw, client = lab
    done = client.completions.create(model="text", prompt="hello there", max_tokens=20)
    spec.check("CreateCompletionResponse", done.model_dump(exclude_unset=True), subset=False)
    assert done.object == "text_completion"
    assert "hello there" in done.choices[0].text
    assert done.usage is not None and done.usage.completion_tokens > 0
    chunks = list(
        client.completions.create(
            model="text",
            prompt="hello there",
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "hello there" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    for c in chunks:  # the spec's schema is the whole answer's: chunks with a finish_reason match it
        if c.choices and c.choices[0].finish_reason:
            spec.check("CreateCompletionResponse", c.model_dump(exclude_unset=True), subset=False)
    rows = [r for r in _rows(gw) if r["endpoint"] == schema.ENDPOINT_COMPLETIONS]
    assert [r["status"] for r in rows] == [200, 200]
    assert [r["flags"] & schema.FLAG_STREAM for r in rows] == [0, schema.FLAG_STREAM]
    assert rows[0]["completion_tokens"] == done.usage.completion_tokens
    assert rows[1]["completion_tokens"] == chunks[-1].usage.completion_tokens


def test_stream_hides_usage_unless_asked(lab) -> None:
    _, _, client = lab
    chunks = list(client.completions.create(model="text", prompt="hi", stream=True))
    assert chunks and all(c.usage is None for c in chunks)


def test_bad_completions_request_is_a_400_in_openai_shape(lab) -> None:
    _, _, client = lab
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="text", prompt="hi", max_tokens=-1)
    assert err.value.body["code"] == "invalid_value" and err.value.body["param"] == "max_tokens"
    with pytest.raises(openai.NotFoundError) as nf:
        client.completions.create(model="nope", prompt="hi")
    assert nf.value.body["code"] == "model_not_found"


def test_models_retrieve(lab) -> None:
    _, gw, client = lab
    m = client.models.retrieve("text")
    assert m.id == "text" and m.object == "model"
    spec.check("Model", m.model_dump(), subset=False)
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("missing")
    assert err.value.body["code"] == "model_not_found"
    r = httpx.get(f"{gw.base_url}/models", headers={"Authorization": f"Bearer {MASTER}"})
    assert r.headers.get("x-request-id")
