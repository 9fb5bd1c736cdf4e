"""The real openai SDK (sync and async) drives the gateway against a fake OpenAI upstream on loopback."""

from __future__ import annotations

import json
import urllib.request

import httpx
import openai
import pytest

from tests.conftest import MASTER, UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def gw(openai_upstream, make_gateway):
    base = f"{openai_upstream.url}/v1"
    return make_gateway(
        {
            "model_list": [
                model("gpt-4o-mini", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
                model("embedder", "openai/text-embedding-3-small", base, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 1, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )


@pytest.fixture
def client(gw):
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)


def test_chat_passes_params_and_returns_upstream_usage(client, openai_upstream):
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        temperature=0.2,
        seed=7,
        stop=["x"],
        n=2,
        response_format={"type": "json_object"},
        user="u1",
    )
    assert [c.message.content for c in r.choices] == ["echo: hello there"] * 2
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 3, 8)
    sent = openai_upstream.up.requests("chat")[-1]["body"]
    assert sent["model"] == "gpt-4o-mini"
    assert {k: sent[k] for k in ("temperature", "seed", "stop", "n", "user")} == {
        "temperature": 0.2,
        "seed": 7,
        "stop": ["x"],
        "n": 2,
        "user": "u1",
    }
    assert sent["response_format"] == {"type": "json_object"}
    assert openai_upstream.up.requests("chat")[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_stream_without_include_usage_hides_usage_but_upstream_was_asked(client, openai_upstream):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = openai_upstream.up.requests("chat")[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage_shows_final_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)


def test_tools_round_trip(client, openai_upstream):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    msgs: list[dict] = [{"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    msgs += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r2 = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools)
    assert r2.choices[0].message.content == "tool said: sunny"
    sent = openai_upstream.up.requests("chat")[-1]["body"]
    assert sent["tools"] == tools and sent["messages"][-1]["tool_call_id"] == call.id


def test_streamed_tool_call(client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=tools, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "lookup"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}


def test_embeddings_and_models(client):
    e = client.embeddings.create(model="embedder", input=["a b", "c"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8
    assert e.usage.prompt_tokens == 3
    assert sorted(m.id for m in client.models.list()) == ["embedder", "gpt-4o-mini"]


async def test_async_sdk(gw):
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "echo: hello there"
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage.total_tokens == 8
    e = await client.embeddings.create(model="embedder", input="x y z")
    assert e.usage.prompt_tokens == 3
    await client.close()


# -- errors ----------------------------------------------------------------------------------------------


def test_401_missing_and_bad_key(gw):
    for key in ("wrong-key", ""):
        client = openai.OpenAI(
            base_url=gw.base_url,
            api_key=key or "x",
            max_retries=0,
            default_headers={} if key else {"Authorization": ""},
        )
        with pytest.raises(openai.AuthenticationError) as exc:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert exc.value.status_code == 401
        assert exc.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base_url, api_key="nope", max_retries=0).models.list()


def test_404_unknown_model_suggests_close_names(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4o-mni", messages=MSG)
    assert "gpt-4o-mini" in exc.value.message
    assert exc.value.body["code"] == "model_not_found" and exc.value.body["param"] == "model"


def test_400_invalid_params_name_the_field(client):
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": MSG, "temperature": 5}, "temperature"),
        ({"messages": MSG, "n": 0}, "n"),
        ({"messages": MSG, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": MSG, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ]
    for extra, field in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model="gpt-4o-mini", **extra)
        assert exc.value.body["param"] == field, extra
        assert field in exc.value.message


def test_400_malformed_json_and_413_oversize(gw):
    headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
    r = httpx.post(f"{gw.base_url}/chat/completions", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (11 * 2**20)}]})
    r = httpx.post(f"{gw.base_url}/chat/completions", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_429_after_retries_with_retry_after(client, openai_upstream):
    openai_upstream.up.fail_next(2, status=429, retry_after="0")
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert exc.value.response.headers["retry-after"] == "1"
    assert len(openai_upstream.up.requests("chat")) == 2  # first try + num_retries=1


def test_502_on_upstream_5xx_and_504_on_timeout(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [
                model("m", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY, timeout=0.5)
            ],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    openai_upstream.up.fail_next(status=503)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="m", messages=MSG)
    assert exc.value.status_code == 502
    openai_upstream.up.fail_next(delay=2.0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="m", messages=MSG)
    assert exc.value.status_code == 504 and exc.value.body["code"] == "upstream_timeout"


def test_upstream_400_is_passed_through_not_retried(client, openai_upstream):
    openai_upstream.up.fail_next(status=400, body={"error": {"message": "context too long", "type": "x"}})
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "context too long" in exc.value.message
    assert len(openai_upstream.up.requests("chat")) == 1


def test_upstream_key_never_in_errors(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [model("m", "openai/x", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)],
            "router_settings": {"num_retries": 0},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    openai_upstream.up.fail_next(status=401, body={"error": {"message": f"Incorrect API key {UPSTREAM_KEY}"}})
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="m", messages=MSG)
    assert exc.value.status_code == 502
    assert UPSTREAM_KEY not in exc.value.response.text
    metrics = urllib.request.urlopen(f"{gw.url}/metrics").read().decode()
    assert UPSTREAM_KEY not in metrics and MASTER not in metrics


def test_unknown_v1_endpoint_is_openai_shaped_404(gw):
    r = httpx.get(f"{gw.base_url}/nope", headers={"Authorization": f"Bearer {MASTER}"})
    assert r.status_code == 404 and "error" in r.json()


def test_405_for_wrong_method(gw):
    r = httpx.get(f"{gw.base_url}/chat/completions", headers={"Authorization": f"Bearer {MASTER}"})
    assert (
        r.status_code == 405
        and r.headers["allow"] == "POST"
        and r.json()["error"]["type"] == "method_not_allowed"
    )


def test_streams_release_their_in_flight_slot(client, gw):
    for _ in range(3):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert [d.state.in_flight for d in gw.app.state.router.groups["gpt-4o-mini"]] == [0]


def test_stream_wire_format_is_what_openai_sends(gw):
    headers = {"Authorization": f"Bearer {MASTER}"}
    plain = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers=headers,
        json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
    ).text
    assert '"usage"' not in plain  # we asked the upstream for usage; the client did not
    assert plain.endswith("data: [DONE]\n\n") and plain.count("data: ") == 6
    with_usage = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers=headers,
        json={
            "model": "gpt-4o-mini",
            "messages": MSG,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ).text
    events = [json.loads(line[6:]) for line in with_usage.split("\n\n") if line.startswith("data: {")]
    assert all(e["usage"] is None for e in events[:-1])  # as OpenAI sends them: usage null until the end
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 8
