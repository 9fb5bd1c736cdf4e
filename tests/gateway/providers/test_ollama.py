"""The Ollama adapter against a fake Ollama speaking the native /api/chat NDJSON wire format."""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from ailab.gateway.providers.ollama import OllamaProvider, list_models
from ailab.gateway.types import Deployment, UpstreamError
from tests.upstreams.harness import ServerThread, Upstream, free_port
from tests.upstreams.ollama_server import make_app

KEY = "sk-ollama-secret-key-1234"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = base64.b64encode(b"\x89PNG fake").decode()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Upstream]]:
    up = Upstream("ollama")
    srv = ServerThread(make_app(up)).start()
    up.url = srv.url
    yield srv, up
    srv.stop()


@pytest.fixture
def up(server: tuple[ServerThread, Upstream]) -> Iterator[Upstream]:
    upstream = server[1]
    upstream.clear()
    upstream.api_key = None
    yield upstream
    upstream.clear()
    upstream.api_key = None


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def provider(up: Upstream, session: aiohttp.ClientSession, **kw: Any) -> OllamaProvider:
    fields: dict[str, Any] = {
        "id": "d1",
        "group": "local",
        "provider": "ollama",
        "provider_label": "ollama",
        "price_id": None,
        "model": "llama3.2",
        "api_base": up.url + "/",
        "api_key": None,
    }
    fields.update(kw)
    return OllamaProvider(Deployment(**fields), session)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def collect(p: OllamaProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c async for c in p.chat_stream(body)]


# -- chat -------------------------------------------------------------------------------------------------


async def test_chat_basic(up: Upstream, session: aiohttp.ClientSession) -> None:
    out = await provider(up, session).chat({"model": "x", "messages": user("hello there")})
    assert out["object"] == "chat.completion"
    assert out["id"].startswith("chatcmpl-")
    assert out["model"] == "llama3.2"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # prompt: 2 words + 4; completion: 3 words + 2
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    sent = up.requests("/api/chat")[-1]
    assert sent["body"] == {"model": "llama3.2", "messages": user("hello there"), "stream": False}
    assert "authorization" not in sent["headers"]


async def test_system_message_and_history(up: Upstream, session: aiohttp.ClientSession) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "be"}, {"type": "text", "text": "kind"}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    out = await provider(up, session).chat({"messages": messages})
    assert out["choices"][0]["message"]["content"] == "echo: again"
    assert up.requests()[-1]["body"]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": "be\nkind"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "thinking": "greet back"},
        {"role": "user", "content": "again"},
    ]


async def test_params_mapping(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {
        "messages": user("hi"),
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": "END",
        "max_tokens": 50,
        "presence_penalty": 0.5,
        "user": "u1",
        "num_ctx": 8192,
        "keep_alive": "5m",
        "response_format": {"type": "json_object"},
        "stream_options": {"include_usage": True},
    }
    out = await provider(up, session).chat(body)
    assert out["choices"][0]["message"]["content"] == '{"echo": "echo: hi"}'
    sent = up.requests()[-1]["body"]
    assert sent["format"] == "json"
    assert sent["keep_alive"] == "5m"
    assert sent["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "num_predict": 50,
        "presence_penalty": 0.5,
        "num_ctx": 8192,
    }
    assert "user" not in sent and "stream_options" not in sent

    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    await provider(up, session).chat(
        {
            "messages": user("yo"),
            "max_completion_tokens": 9,
            "max_tokens": 99,
            "stop": ["a", "b"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        }
    )
    sent = up.requests()[-1]["body"]
    assert sent["format"] == schema
    assert sent["options"] == {"num_predict": 9, "stop": ["a", "b"]}


async def test_reasoning_effort_maps_to_think(up: Upstream, session: aiohttp.ClientSession) -> None:
    await provider(up, session, model="qwen3:8b").chat({"messages": user("a"), "reasoning_effort": "high"})
    assert up.requests()[-1]["body"]["think"] is True
    await provider(up, session, model="qwen3:8b").chat({"messages": user("b"), "reasoning_effort": "none"})
    assert up.requests()[-1]["body"]["think"] is False


async def test_length_finish_reason(up: Upstream, session: aiohttp.ClientSession) -> None:
    out = await provider(up, session).chat({"messages": user("one two three four"), "max_tokens": 2})
    assert out["choices"][0]["message"]["content"] == "echo: one"
    assert out["choices"][0]["finish_reason"] == "length"


async def test_n_greater_than_one_rejected(up: Upstream, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("hi"), "n": 2})
    assert ei.value.status == 400 and "`n`" in ei.value.message
    assert not ei.value.retryable
    assert up.requests() == []


async def test_images(up: Upstream, session: aiohttp.ClientSession) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
    ]
    out = await provider(up, session).chat({"messages": [{"role": "user", "content": content}]})
    assert out["choices"][0]["message"]["content"] == "echo: what is this"
    assert up.requests()[-1]["body"]["messages"] == [
        {"role": "user", "content": "what is this", "images": [PNG]}
    ]


async def test_remote_image_url_rejected(up: Upstream, session: aiohttp.ClientSession) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": [{"role": "user", "content": content}]})
    assert ei.value.status == 400
    assert "messages[0].content[0].image_url" in ei.value.message
    assert up.requests() == []


async def test_tools_round_trip(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    messages: list[dict[str, Any]] = user("weather in Paris?")
    out = await p.chat({"messages": messages, "tools": TOOLS, "tool_choice": "auto"})
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert up.requests()[-1]["body"]["tools"] == TOOLS
    assert out["usage"]["completion_tokens"] == 2 + 6

    messages = [
        *messages,
        choice["message"],
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny, 21C"},
    ]
    out = await p.chat({"messages": messages, "tools": TOOLS})
    assert out["choices"][0]["message"]["content"] == "tool said: sunny, 21C"
    assert out["choices"][0]["finish_reason"] == "stop"
    sent = up.requests()[-1]["body"]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    assert sent[2] == {"role": "tool", "content": "sunny, 21C", "tool_name": "get_weather"}


async def test_tool_choice_mapping(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    out = await p.chat({"messages": user("hi"), "tools": TOOLS, "tool_choice": "none"})
    assert "tools" not in up.requests()[-1]["body"]
    assert out["choices"][0]["message"]["content"] == "echo: hi"
    other = {"type": "function", "function": {"name": "other", "parameters": {}}}
    await p.chat(
        {
            "messages": user("hi"),
            "tools": [other, *TOOLS],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    assert up.requests()[-1]["body"]["tools"] == TOOLS
    with pytest.raises(UpstreamError) as ei:
        await p.chat(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "not json"},
                            }
                        ],
                    }
                ]
            }
        )
    assert ei.value.status == 400 and "messages[0].tool_calls[0].function.arguments" in ei.value.message


async def test_cached_prompt_usage_is_estimated(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    body = {"messages": user("same prompt twice please")}
    first = await p.chat(body)
    assert first["usage"] == {"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15}
    second = await p.chat(body)  # the fake omits prompt_eval_count, as Ollama does after a full cache hit
    assert second["usage"]["estimated"] is True
    assert second["usage"]["completion_tokens"] == 7
    assert second["usage"]["prompt_tokens"] == 6  # ~4 chars a token over "same prompt twice please"


# -- streaming --------------------------------------------------------------------------------------------


async def test_stream_text(up: Upstream, session: aiohttp.ClientSession) -> None:
    chunks = await collect(provider(up, session), {"messages": user("hello big world"), "stream": True})
    assert up.requests()[-1]["body"]["stream"] is True
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "echo: hello big world"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 2) + ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}


async def test_stream_tool_calls(up: Upstream, session: aiohttp.ClientSession) -> None:
    chunks = await collect(
        provider(up, session), {"messages": user("weather?"), "tools": TOOLS, "stream": True}
    )
    calls = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls == [
        {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}


async def test_stream_error_line(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(body={"error": f"model runner has unexpectedly stopped {KEY}"}, cut_after=2)
    p = provider(up, session, api_key=KEY)
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as ei:
        async for c in p.chat_stream({"messages": user("a b c d")}):
            got.append(c)
    assert "unexpectedly stopped" in ei.value.message and KEY not in ei.value.message
    assert ei.value.status == 500 and ei.value.retryable
    assert [c["choices"][0]["delta"].get("content") for c in got] == ["", "echo:", " a"]


async def test_stream_cut(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(cut_after=2)
    with pytest.raises(UpstreamError) as ei:
        await collect(provider(up, session), {"messages": user("a b c d")})
    assert ei.value.kind == "connection" and ei.value.retryable


# -- errors -----------------------------------------------------------------------------------------------


async def test_auth_header_and_401(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.api_key = KEY
    out = await provider(up, session, api_key=KEY).chat({"messages": user("hi")})
    assert out["choices"][0]["message"]["content"] == "echo: hi"
    assert up.requests()[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session, api_key=KEY + "-wrong").chat({"messages": user("hi")})
    assert ei.value.status == 401 and not ei.value.retryable
    assert "unauthorized" in ei.value.message and KEY not in str(ei.value)


async def test_model_not_found(up: Upstream, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session, model="nope").chat({"messages": user("hi")})
    assert ei.value.status == 404
    assert 'model "nope" not found' in ei.value.message


async def test_429_with_retry_after(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=429, retry_after="3")
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": user("hi")})
    assert ei.value.status == 429 and ei.value.retry_after == 3.0 and ei.value.retryable


async def test_500_stream(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=500, body={"error": f"boom {KEY}"})
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as ei:
        async for c in provider(up, session, api_key=KEY).chat_stream({"messages": user("hi")}):
            got.append(c)
    assert got == []  # nothing was emitted before the failure, so the router may still retry elsewhere
    assert ei.value.status == 500 and ei.value.retryable
    assert "boom" in ei.value.message and KEY not in ei.value.message


async def test_timeout(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(delay=1.5)
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session, timeout=0.3).chat({"messages": user("hi")})
    assert ei.value.kind == "timeout" and ei.value.retryable


async def test_non_base64_data_url_rejected(up: Upstream, session: aiohttp.ClientSession) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).chat({"messages": [{"role": "user", "content": content}]})
    assert ei.value.status == 400 and "base64" in ei.value.message
    assert up.requests() == []


# -- embeddings -------------------------------------------------------------------------------------------


async def test_embed(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session, model="nomic-embed-text")
    out = await p.embed({"model": "x", "input": ["hello world", "bye"], "dimensions": 4, "user": "u"})
    assert out["object"] == "list"
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 4 for d in out["data"])
    assert out["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert up.requests("/api/embed")[-1]["body"] == {
        "model": "nomic-embed-text",
        "input": ["hello world", "bye"],
        "dimensions": 4,
    }

    b64 = await p.embed({"input": "hello world", "encoding_format": "base64", "dimensions": 4})
    raw = base64.b64decode(b64["data"][0]["embedding"])
    floats = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert floats == pytest.approx(out["data"][0]["embedding"], abs=1e-6)


async def test_embed_rejects_token_arrays(up: Upstream, session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as ei:
        await provider(up, session).embed({"input": [[1, 2, 3]]})
    assert ei.value.status == 400 and "input" in ei.value.message


# -- discovery --------------------------------------------------------------------------------------------


async def test_list_models(up: Upstream, session: aiohttp.ClientSession) -> None:
    names = await list_models(session, up.url + "/")
    assert names == ["llama3.2:latest", "qwen3:8b", "nomic-embed-text:latest"]
    assert up.requests("/api/tags")


async def test_list_models_nobody_home(session: aiohttp.ClientSession) -> None:
    assert await list_models(session, f"http://127.0.0.1:{free_port()}", timeout=0.5) is None


async def test_list_models_silent_listener(session: aiohttp.ClientSession) -> None:
    # Something accepts the connection but never answers: give up after the timeout.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert await list_models(session, f"http://127.0.0.1:{port}", timeout=0.3) is None


async def test_list_models_not_ollama(up: Upstream, session: aiohttp.ClientSession) -> None:
    assert await list_models(session, up.url + "/nothing-here") is None


def test_wire_json_is_compact_objects() -> None:
    # Ollama needs tool-call arguments as objects; our converter never sends them as strings.
    from ailab.gateway.providers.ollama_convert import convert_messages

    msgs = convert_messages(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            }
        ]
    )
    assert orjson.loads(orjson.dumps(msgs))[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


async def test_thinking_maps_to_reasoning_content(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session, model="qwen3:8b")
    out = await p.chat({"messages": user("x y"), "reasoning_effort": "low"})
    msg = out["choices"][0]["message"]
    assert msg == {
        "role": "assistant",
        "content": "echo: x y",
        "refusal": None,
        "reasoning_content": "the user wants an echo",
    }
    assert out["usage"]["completion_tokens"] == 3 + 2 + 5  # thinking is part of eval_count

    chunks = await collect(p, {"messages": user("x y z"), "reasoning_effort": "low"})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "the user wants an echo"}
    assert "".join(d.get("content", "") for d in deltas) == "echo: x y z"
    assert chunks[-1]["usage"]["completion_tokens"] == 4 + 2 + 5
