"""Requests built from OpenAI's own spec (CreateChatCompletionRequest, CreateEmbeddingRequest) through the
real openai SDK: every documented field in every documented shape is served (never a 500), and a wrong
shape gets a 400 that names the field."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from ailab.gateway.validate import CHAT_FIELDS, EMBEDDING_FIELDS
from tests.conftest import MASTER, UPSTREAM_KEY, model
from tests.gateway import spec

MSG = [{"role": "user", "content": "hello there"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
def client(openai_upstream, make_gateway):
    base = f"{openai_upstream.url}/v1"
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
                model("e", "openai/text-embedding-3-small", base, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)


def chat_field_cases() -> list[tuple[str, Any]]:
    """(field, value) for every chat request property, one per documented shape, full and minimal."""
    cases: list[tuple[str, Any]] = []
    for name, schema in spec.properties("CreateChatCompletionRequest").items():
        if name in ("model", "messages"):
            continue
        for alt in spec.alternatives(schema):
            for full in (True, False):
                value = spec.sample(alt, full)
                if (name, value) not in cases:
                    cases.append((name, value))
    return cases


def message_cases() -> list[dict[str, Any]]:
    """Every message role, with each of its content shapes and each content part type."""
    out: list[dict[str, Any]] = []
    for variant in spec.alternatives(spec.schemas()["ChatCompletionRequestMessage"]):
        for full in (True, False):
            base = spec.sample(variant, full)
            props = spec.resolve(variant).get("properties", {})
            contents = spec.alternatives(props["content"]) if "content" in props else []
            for shape in contents:
                parts = spec.alternatives(shape["items"]) if shape.get("type") == "array" else [None]
                for part in parts:
                    value = [spec.sample(part, full)] if part is not None else spec.sample(shape, full)
                    msg = {**base, "content": value}
                    if msg not in out:
                        out.append(msg)
    return out


def _request(name: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": MSG, name: value}
    if name in ("stream_options",):
        body["stream"] = True
    if name in ("tool_choice", "parallel_tool_calls") and "tools" not in body:
        body["tools"] = [TOOL]
    if name == "function_call":
        body["functions"] = [{"name": "get_weather"}]
    return body


def _send(client: openai.OpenAI, body: dict[str, Any]) -> Any:
    body = dict(body)
    stream = body.get("stream") is True
    if stream:
        del body["stream"]
    kwargs = {"model": body.pop("model"), "messages": body.pop("messages")}
    if stream:
        return list(client.chat.completions.create(**kwargs, stream=True, extra_body=body))
    return client.chat.completions.create(**kwargs, extra_body=body)


def test_every_spec_field_is_checked_by_the_validator() -> None:
    chat = set(spec.properties("CreateChatCompletionRequest")) - {"model", "messages"}
    assert chat <= set(CHAT_FIELDS), chat - set(CHAT_FIELDS)
    emb = set(spec.properties("CreateEmbeddingRequest")) - {"model", "input"}
    assert emb <= set(EMBEDDING_FIELDS)


def test_every_documented_field_shape_is_served(client) -> None:
    cases = chat_field_cases()
    assert len(cases) > 40
    validate = spec.validator("CreateChatCompletionRequest")
    failures = []
    for name, value in cases:
        body = _request(name, value)
        assert validate.is_valid(body), (name, value)  # the sample itself follows the spec
        try:
            _send(client, body)
        except openai.APIStatusError as exc:
            failures.append((name, value, exc.status_code, exc.message))
    assert failures == []


def test_every_documented_message_shape_is_served(client) -> None:
    cases = message_cases()
    roles = {m["role"] for m in cases}
    assert roles == {"developer", "system", "user", "assistant", "tool", "function"}
    validate = spec.validator("CreateChatCompletionRequest")
    failures = []
    for msg in cases:
        body = {"model": "m", "messages": [*MSG, msg]}
        assert validate.is_valid(body), msg
        try:
            _send(client, body)
        except openai.APIStatusError as exc:
            failures.append((msg, exc.status_code, exc.message))
    assert failures == []


def test_common_real_world_requests(client) -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(model="m", messages=MSG, tools=[TOOL], tool_choice=forced)
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    for choice in ("required", "none", "auto"):
        client.chat.completions.create(model="m", messages=MSG, tools=[TOOL], tool_choice=choice)
    history = [
        {"role": "developer", "content": "be brief", "name": "ops"},
        {"role": "user", "content": "weather?", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "sunny"}]},
    ]
    r = client.chat.completions.create(
        model="m",
        messages=history,
        tools=[TOOL],
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
        logprobs=True,
        top_logprobs=3,
        reasoning_effort="low",
        metadata={"team": "a"},
        store=False,
        service_tier="auto",
        user="u1",
        logit_bias={"50256": -100},
        seed=3,
    )
    assert r.choices[0].message.content == "tool said: sunny"


INVALID = [
    ({"tool_choice": {"type": "function"}}, "tool_choice.function"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": 3}}}, "tool_choice.function.name"),
    ({"tool_choice": ["auto"]}, "tool_choice"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format.json_schema.name"),
    ({"logit_bias": {"1": 500}}, "logit_bias.'1'"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"modalities": ["video"]}, "modalities"),
    ({"audio": {"voice": "alloy"}}, "audio.format"),
    ({"prediction": {"type": "content"}}, "prediction.content"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"metadata": {"a": 1}}, "metadata.'a'"),
    ({"web_search_options": {"search_context_size": "huge"}}, "web_search_options.search_context_size"),
    ({"functions": []}, "functions"),
    ({"function_call": 7}, "function_call"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].image_url",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name"),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]},
        "messages[0].tool_calls[0].function.arguments",
    ),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
]


@pytest.mark.parametrize(("extra", "param"), INVALID)
def test_invalid_shapes_get_400_naming_the_field(client, extra: dict[str, Any], param: str) -> None:
    body = {"model": "m", "messages": MSG, **extra}
    with pytest.raises(openai.BadRequestError) as exc:
        _send(client, body)
    assert exc.value.body["param"] == param
    assert param in exc.value.message


def test_wrong_type_of_every_field_gets_400_naming_it(client) -> None:
    for name, schema in spec.properties("CreateChatCompletionRequest").items():
        value = spec.wrong_value(schema, name)
        body = {"model": "m", "messages": MSG, name: value}
        with pytest.raises(openai.BadRequestError) as exc:
            _send(client, body)
        assert str(exc.value.body["param"]).startswith(name), (name, value, exc.value.body)
        assert exc.value.status_code == 400


def test_embedding_shapes(client) -> None:
    props = spec.properties("CreateEmbeddingRequest")
    for alt in spec.alternatives(props["input"]):
        client.embeddings.create(model="e", input=spec.sample(alt), dimensions=8, user="u")
    for fmt in ("float", "base64"):
        client.embeddings.create(model="e", input="x", encoding_format=fmt)
    for bad, param in ((["a", 1], "input"), ([[]], "input"), (["x"] * 2049, "input")):
        with pytest.raises(openai.BadRequestError) as exc:
            client.embeddings.create(model="e", input=bad)
        assert exc.value.body["param"] == param
    for name in ("dimensions", "encoding_format", "user"):
        with pytest.raises(openai.BadRequestError) as exc:
            client.embeddings.create(
                model="e", input="x", extra_body={name: spec.wrong_value(props[name], name)}
            )
        assert exc.value.body["param"] == name


def test_an_escaping_exception_is_an_openai_shaped_json_500(client, make_gateway, openai_upstream) -> None:
    gw = make_gateway({"model_list": [model("m", "openai/x", f"{openai_upstream.url}/v1")]})

    async def boom(body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug with a secret sk-xyz")

    for provider in gw.app.state.router.providers.values():
        provider.chat = boom  # type: ignore[method-assign]
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "m", "messages": MSG},
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["type"] == "server_error" and "sk-xyz" not in r.text
    assert "Traceback" not in r.text
    gw.flush()
    from sqlalchemy import select

    from ailab.ledger import schema

    with gw.app.state.engine.connect() as conn:
        rows = conn.execute(select(schema.requests.c.status)).scalars().all()
    assert rows == [500]


@pytest.fixture(params=["anthropic", "gemini", "ollama"])
def adapter_client(request, make_gateway):
    from tests.conftest import start_upstream
    from tests.upstreams import anthropic_server, gemini_server, ollama_server

    apps = {"anthropic": anthropic_server, "gemini": gemini_server, "ollama": ollama_server}
    name = request.param
    key = None if name == "ollama" else UPSTREAM_KEY
    running = start_upstream(name, apps[name].make_app, api_key=key)
    models = {
        "anthropic": "anthropic/claude-sonnet-4-5",
        "gemini": "gemini/gemini-2.5-flash",
        "ollama": "ollama/llama3.2",
    }
    gw = make_gateway(
        {
            "model_list": [model("m", models[name], running.url, api_key=key)],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    yield openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    running.server.stop()


def test_spec_requests_through_every_adapter_never_5xx(adapter_client) -> None:
    """An adapter may refuse what its provider cannot do (a 400 saying so), never fail with a 5xx."""
    bodies = [_request(n, v) for n, v in chat_field_cases()]
    bodies += [{"model": "m", "messages": [*MSG, m]} for m in message_cases()]
    failures = []
    for body in bodies:
        try:
            _send(adapter_client, body)
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code not in (400, 422):
                failures.append((body, exc.status_code, exc.message))
    assert failures == []
