"""The Anthropic adapter against a fake Anthropic speaking the Messages API wire format (incl. typed SSE)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from ailab.gateway.providers.anthropic import AnthropicProvider
from ailab.gateway.providers.anthropic_convert import to_openai
from ailab.gateway.types import Deployment, UpstreamError
from tests.upstreams.anthropic_server import make_app
from tests.upstreams.harness import ServerThread, Upstream

KEY = "sk-ant-api03-SECRET-test-key-9876"
MODEL = "claude-sonnet-4-5"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = base64.b64encode(b"\x89PNG fake image").decode()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Upstream]]:
    up = Upstream("anthropic", api_key=KEY)
    srv = ServerThread(make_app(up)).start()
    up.url = srv.url
    yield srv, up
    srv.stop()


@pytest.fixture
def up(server: tuple[ServerThread, Upstream]) -> Iterator[Upstream]:
    upstream = server[1]
    upstream.clear()
    yield upstream
    upstream.clear()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def provider(up: Upstream, session: aiohttp.ClientSession, **kw: Any) -> AnthropicProvider:
    fields: dict[str, Any] = {
        "id": "d1",
        "group": "claude",
        "provider": "anthropic",
        "provider_label": "anthropic",
        "price_id": "anthropic",
        "model": MODEL,
        "api_base": up.url + "/",
        "api_key": KEY,
    }
    fields.update(kw)
    return AnthropicProvider(Deployment(**fields), session)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def collect(p: AnthropicProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c async for c in p.chat_stream(body)]


def sent(up: Upstream) -> dict[str, Any]:
    body: dict[str, Any] = up.requests("/v1/messages")[-1]["body"]
    return body


# -- non-streaming ------------------------------------------------------------------------------------


async def test_chat_basic_and_headers(up: Upstream, session: aiohttp.ClientSession) -> None:
    out = await provider(up, session).chat({"model": "claude", "messages": user("hello there world")})
    assert out["object"] == "chat.completion"
    assert out["id"] == "msg_01FakeAnthropic" and out["model"] == MODEL
    choice = out["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: hello there world", "refusal": None}
    assert choice["finish_reason"] == "stop"
    # 3 words + 3 per message in; 4 words out; no cache fields when nothing was cached.
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    req = up.requests("/v1/messages")[-1]
    assert req["headers"]["x-api-key"] == KEY and req["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req["headers"]
    assert req["body"] == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there world"}]}],
    }


@pytest.mark.parametrize("base", ["{url}", "{url}/v1", "{url}/v1/messages"])
async def test_api_base_forms(up: Upstream, session: aiohttp.ClientSession, base: str) -> None:
    out = await provider(up, session, api_base=base.format(url=up.url)).chat({"messages": user("hi")})
    assert out["choices"][0]["message"]["content"] == "echo: hi"


async def test_system_messages_collected(up: Upstream, session: aiohttp.ClientSession) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "second"},
    ]
    out = await provider(up, session).chat({"messages": messages})
    body = sent(up)
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert out["choices"][0]["message"]["content"] == "echo: second"
    await provider(up, session).chat({"messages": [{"role": "system", "content": "Solo."}, *user("x")]})
    assert sent(up)["system"] == "Solo."


async def test_params_mapping(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {
        "messages": user("a b c"),
        "max_completion_tokens": 77,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": "END",
        "user": "alice",
        "seed": 42,
        "presence_penalty": 0.1,
        "stream_options": {},
        "top_k": 5,
    }
    await provider(up, session).chat(body)
    got = sent(up)
    assert got["max_tokens"] == 77 and got["temperature"] == 0.3 and got["top_p"] == 0.9 and got["top_k"] == 5
    assert got["stop_sequences"] == ["END"] and got["metadata"] == {"user_id": "alice"}
    assert "seed" not in got and "presence_penalty" not in got and "n" not in got
    await provider(up, session).chat({"messages": user("x"), "max_tokens": 12, "stop": ["A", "B"], "n": 1})
    assert sent(up)["max_tokens"] == 12 and sent(up)["stop_sequences"] == ["A", "B"]


async def test_n_greater_than_one_rejected(up: Upstream, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("x"), "n": 2})
    assert ei.value.status == 400 and "`n`" in ei.value.message and not ei.value.retryable
    assert up.requests() == []  # rejected before any upstream call


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_choice_mapping(
    up: Upstream, session: aiohttp.ClientSession, choice: Any, expected: Any
) -> None:
    out = await provider(up, session).chat(
        {"messages": user("weather?"), "tools": TOOLS, "tool_choice": choice}
    )
    got = sent(up)
    assert got["tool_choice"] == expected
    assert got["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    finish = out["choices"][0]["finish_reason"]
    assert finish == ("stop" if choice == "none" else "tool_calls")


async def test_parallel_tool_calls_false(up: Upstream, session: aiohttp.ClientSession) -> None:
    await provider(up, session).chat({"messages": user("w"), "tools": TOOLS, "parallel_tool_calls": False})
    assert sent(up)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


async def test_images(up: Upstream, session: aiohttp.ClientSession) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    out = await provider(up, session).chat({"messages": [{"role": "user", "content": content}]})
    blocks = sent(up)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert out["choices"][0]["message"]["content"] == "echo: what is this"
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat(
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}
        )
    assert ei.value.status == 400 and "input_audio" in ei.value.message


async def test_tools_round_trip(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    messages: list[dict[str, Any]] = user("weather in Paris?")
    first = await p.chat({"messages": messages, "tools": TOOLS})
    msg = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["content"] == "Let me check."
    assert msg["tool_calls"] == [
        {
            "id": "toolu_01Fake",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    # A second parallel call and two tool results: the results must merge into one user turn, first in it.
    msg["tool_calls"].append(
        {
            "id": "toolu_02",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
        }
    )
    messages += [
        msg,
        {"role": "tool", "tool_call_id": "toolu_01Fake", "content": "sunny 21C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": [{"type": "text", "text": "rain"}]},
    ]
    second = await p.chat({"messages": messages, "tools": TOOLS})
    assert second["choices"][0]["message"]["content"] == "tool said: sunny 21C rain"
    got = sent(up)["messages"]
    assert [m["role"] for m in got] == ["user", "assistant", "user"]
    assert got[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01Fake",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert got[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01Fake", "content": "sunny 21C"},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": [{"type": "text", "text": "rain"}]},
    ]


async def test_response_format_json_schema(up: Upstream, session: aiohttp.ClientSession) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {
        "messages": user("json please"),
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    out = await provider(up, session).chat(body)
    assert sent(up)["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert sent(up)["tools"][0]["input_schema"] == schema
    assert json.loads(out["choices"][0]["message"]["content"]) == {"city": "Paris"}
    assert out["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in out["choices"][0]["message"]
    chunks = await collect(provider(up, session), body)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert json.loads(text) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_finish_reasons(up: Upstream, session: aiohttp.ClientSession) -> None:
    out = await provider(up, session).chat({"messages": user("one two three four"), "max_tokens": 2})
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == "echo: one"
    out = await provider(up, session).chat({"messages": user("alpha STOP beta"), "stop": ["STOP"]})
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][0]["message"]["content"] == "echo: alpha "


async def test_thinking_maps_to_reasoning_content(up: Upstream, session: aiohttp.ClientSession) -> None:
    out = await provider(up, session).chat({"messages": user("think"), "reasoning_effort": "low"})
    assert sent(up)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent(up)["max_tokens"] == 4096 + 1024
    msg = out["choices"][0]["message"]
    assert msg["reasoning_content"] == "Thinking about the question." and msg["content"] == "echo: think"
    assert out["usage"]["completion_tokens"] == 2 + 4  # thinking words are output tokens too
    chunks = await collect(provider(up, session), {"messages": user("think"), "reasoning_effort": "low"})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Thinking about the question."


async def test_cache_usage_mapping(up: Upstream, session: aiohttp.ClientSession) -> None:
    system = [
        {"type": "text", "text": "long shared policy text " * 10, "cache_control": {"type": "ephemeral"}}
    ]
    body = {"messages": [{"role": "system", "content": system}, *user("q one")]}
    first = await provider(up, session).chat(body)
    assert sent(up)["system"][0]["cache_control"] == {"type": "ephemeral"}
    # Fake: 40 system words cached, 2 words + 3 fresh; Anthropic's input_tokens exclude both cache counts.
    assert first["usage"] == {
        "prompt_tokens": 45,
        "completion_tokens": 3,
        "total_tokens": 48,
        "cache_creation_input_tokens": 40,
    }
    second = await provider(up, session).chat(body)
    assert second["usage"] == {
        "prompt_tokens": 45,
        "completion_tokens": 3,
        "total_tokens": 48,
        "prompt_tokens_details": {"cached_tokens": 40},
    }


def test_missing_usage_is_estimated() -> None:
    data = {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "hello world"}],
        "stop_reason": "refusal",
    }
    out = to_openai(data, {"messages": user("some prompt text")})
    assert out["usage"]["estimated"] is True and out["usage"]["completion_tokens"] > 0
    assert out["choices"][0]["finish_reason"] == "content_filter"


# -- streaming ----------------------------------------------------------------------------------------


async def test_stream_text(up: Upstream, session: aiohttp.ClientSession) -> None:
    chunks = await collect(provider(up, session), {"messages": user("stream me please"), "stream": True})
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_01FakeAnthropic" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert "".join(content) == "echo: stream me please" and len(content) == 4
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert chunks[-1]["choices"] == []
    # message_start says output_tokens 1, message_delta says 4 (cumulative): 4, not 5.
    assert chunks[-1]["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    assert sent(up)["stream"] is True


async def test_stream_usage_cumulative_deltas_and_cache(up: Upstream, session: aiohttp.ClientSession) -> None:
    system = [{"type": "text", "text": "cached stream prefix " * 5, "cache_control": {"type": "ephemeral"}}]
    body = {"messages": [{"role": "system", "content": system}, *user("hi")]}
    p = provider(up, session, headers={"x-fake-double-delta": "1"})
    first = (await collect(p, body))[-1]["usage"]
    assert first == {
        "prompt_tokens": 19,
        "completion_tokens": 2,
        "total_tokens": 21,
        "cache_creation_input_tokens": 15,
    }
    second = (await collect(p, body))[-1]["usage"]
    assert second == {
        "prompt_tokens": 19,
        "completion_tokens": 2,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 15},
    }
    non_stream = await provider(up, session).chat(body)
    assert non_stream["usage"] == second


async def test_stream_tool_calls(up: Upstream, session: aiohttp.ClientSession) -> None:
    chunks = await collect(provider(up, session), {"messages": user("weather?"), "tools": TOOLS})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    # The tool block is content block 1, but the first tool call: OpenAI index 0.
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01Fake",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(c["index"] == 0 and set(c) == {"index", "function"} for c in calls[1:]) and len(calls) == 3
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 3 + 5


async def test_stream_error_event(up: Upstream, session: aiohttp.ClientSession) -> None:
    headers = {
        "x-fake-stream-error": "overloaded_error",
        "x-fake-stream-error-message": f"Overloaded for {KEY}",
    }
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as ei:
        async for c in provider(up, session, headers=headers).chat_stream({"messages": user("x y")}):
            got.append(c)
    assert got and ei.value.status == 529 and ei.value.retryable and ei.value.kind == "http"
    assert "overloaded_error" in ei.value.message and KEY not in str(ei.value)
    headers = {"x-fake-stream-error": "invalid_request_error"}
    with pytest.raises(UpstreamError) as ei:
        await collect(provider(up, session, headers=headers), {"messages": user("x")})
    assert ei.value.status == 400 and not ei.value.retryable


async def test_stream_cut(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(cut_after=4)
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as ei:
        async for c in provider(up, session).chat_stream({"messages": user("a b c d e")}):
            got.append(c)
    assert ei.value.kind == "connection" and ei.value.retryable
    assert got and not any(c["choices"] == [] for c in got)  # no usage chunk for a cut stream


# -- errors -------------------------------------------------------------------------------------------


async def test_401_wrong_key(up: Upstream, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session, api_key="sk-ant-wrong-key-000").chat({"messages": user("x")})
    assert ei.value.status == 401 and ei.value.kind == "http" and not ei.value.retryable
    assert "invalid x-api-key" in ei.value.message and "sk-ant-wrong-key-000" not in str(ei.value)


async def test_429_retry_after(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=429, retry_after="7")
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("x")})
    assert ei.value.status == 429 and ei.value.retry_after == 7.0 and ei.value.retryable
    up.fail_next(status=429, retry_after="3")
    with pytest.raises(UpstreamError) as ei:
        await collect(provider(up, session), {"messages": user("x")})
    assert ei.value.status == 429 and ei.value.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_retryable(up: Upstream, session: aiohttp.ClientSession, status: int) -> None:
    up.fail_next(status=status)
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("x")})
    assert ei.value.status == status and ei.value.retryable


async def test_timeout(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(delay=1.5)
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session, timeout=0.3).chat({"messages": user("x")})
    assert ei.value.kind == "timeout" and ei.value.retryable


async def test_key_redacted_from_upstream_errors(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"bad request for key {KEY}"},
    }
    up.fail_next(status=400, body=body)
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("x")})
    assert ei.value.status == 400 and KEY not in str(ei.value) and "***" in ei.value.message


async def test_invalid_tool_arguments_rejected(up: Upstream, session: aiohttp.ClientSession) -> None:
    bad = {
        "role": "assistant",
        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
    }
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": [*user("x"), bad]})
    assert ei.value.status == 400 and "arguments" in ei.value.message
