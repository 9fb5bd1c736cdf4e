"""The Gemini adapter against a fake Generative Language API speaking the documented v1beta wire format."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from ailab.gateway.providers.gemini import GeminiProvider
from ailab.gateway.providers.gemini_convert import to_gemini, to_openai
from ailab.gateway.types import Deployment, UpstreamError
from tests.upstreams.gemini_server import SIGNATURE, gemini_error, make_app
from tests.upstreams.harness import ServerThread, Upstream

KEY = "AIzaSy-gemini-secret-key-1234"
MODEL = "gemini-2.5-flash"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
PNG = base64.b64encode(b"\x89PNG fake").decode()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Upstream]]:
    up = Upstream("gemini")
    srv = ServerThread(make_app(up)).start()
    up.url = srv.url
    yield srv, up
    srv.stop()


@pytest.fixture
def up(server: tuple[ServerThread, Upstream]) -> Iterator[Upstream]:
    upstream = server[1]
    upstream.clear()
    upstream.api_key = KEY
    yield upstream
    upstream.clear()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def provider(up: Upstream, session: aiohttp.ClientSession, **kw: Any) -> GeminiProvider:
    fields: dict[str, Any] = {
        "id": "g1",
        "group": "gemini",
        "provider": "gemini",
        "provider_label": "gemini",
        "price_id": "google",
        "model": MODEL,
        "api_base": up.url + "/",
        "api_key": KEY,
    }
    fields.update(kw)
    return GeminiProvider(Deployment(**fields), session)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sent(up: Upstream) -> dict[str, Any]:
    body: dict[str, Any] = up.requests()[-1]["body"]
    return body


async def collect(p: GeminiProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c async for c in p.chat_stream(body)]


# -- chat -----------------------------------------------------------------------------------------------


async def test_chat_maps_response_usage_and_system(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {"messages": [{"role": "system", "content": "You are terse"}, *user("hello world")]}
    out = await provider(up, session).chat(body)
    assert out["object"] == "chat.completion"
    assert out["id"] == "chatcmpl-fakeResp123"
    assert out["model"] == MODEL
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello world", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # prompt = (2+3) + system (3+3) = 11, half cached; candidates 3 + thoughts 7 are all output.
    assert out["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 10,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    req = up.requests()[-1]
    assert req["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert req["headers"]["x-goog-api-key"] == KEY
    assert "key" not in req["query"]
    assert req["body"]["systemInstruction"] == {"parts": [{"text": "You are terse"}]}
    assert req["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello world"}]}]


async def test_roles_and_multi_turn_merge(up: Upstream, session: aiohttp.ClientSession) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "be nice"}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    out = await provider(up, session, model="models/" + MODEL).chat({"messages": messages})
    assert out["choices"][0]["message"]["content"] == "echo: first second"
    req = up.requests()[-1]
    assert req["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert req["body"]["systemInstruction"] == {"parts": [{"text": "be nice"}]}
    assert req["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
    ]


async def test_params_mapping(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {
        "messages": user("hi there"),
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 50,
        "max_completion_tokens": 64,
        "stop": "END",
        "seed": 7,
        "n": 2,
        "presence_penalty": 0.5,
        "user": "u-1",
        "parallel_tool_calls": True,
        "stream_options": {"include_usage": True},
    }
    out = await provider(up, session).chat(body)
    assert sent(up)["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
    }
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert all(c["message"]["content"] == "echo: hi there" for c in out["choices"])
    assert out["usage"]["completion_tokens"] == 2 * 3 + 7

    await provider(up, session).chat({"messages": user("x"), "stop": ["a", "b"]})
    assert sent(up)["generationConfig"] == {"stopSequences": ["a", "b"]}


async def test_response_format(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    out = await p.chat({"messages": user("hi"), "response_format": {"type": "json_object"}})
    assert orjson.loads(out["choices"][0]["message"]["content"]) == {"echo": "hi"}
    assert sent(up)["generationConfig"] == {"responseMimeType": "application/json"}

    simple = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": simple, "strict": True}}
    await p.chat({"messages": user("hi"), "response_format": fmt})
    assert sent(up)["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": simple}

    # additionalProperties is outside Gemini's OpenAPI Schema subset: sent as full JSON Schema instead.
    strict = {**simple, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": strict}}
    await p.chat({"messages": user("hi"), "response_format": fmt})
    assert sent(up)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": strict,
    }


async def test_thinking_maps_and_returns_reasoning(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    out = await p.chat({"messages": user("hi"), "thinking": {"type": "enabled", "budget_tokens": 1000}})
    assert sent(up)["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 1000}
    msg = out["choices"][0]["message"]
    assert msg == {
        "role": "assistant",
        "content": "echo: hi",
        "refusal": None,
        "reasoning_content": "Thinking it over.",
    }

    await p.chat({"messages": user("hi"), "reasoning_effort": "low"})
    assert sent(up)["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}}
    await provider(up, session, model="gemini-3-pro-preview").chat(
        {"messages": user("hi"), "reasoning_effort": "high"}
    )
    assert sent(up)["generationConfig"] == {"thinkingConfig": {"thinkingLevel": "high"}}


async def test_images_and_files(up: Upstream, session: aiohttp.ClientSession) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
        {"type": "image_url", "image_url": "https://example.com/noext"},
        {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}"}},
        {"type": "input_audio", "input_audio": {"data": PNG, "format": "mp3"}},
    ]
    out = await provider(up, session).chat({"messages": [{"role": "user", "content": content}]})
    assert out["choices"][0]["message"]["content"] == "echo: what is this"
    assert sent(up)["contents"][0]["parts"] == [
        {"text": "what is this"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"fileUri": "https://example.com/cat.webp?size=2", "mimeType": "image/webp"}},
        {"fileData": {"fileUri": "https://example.com/noext", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        {"inlineData": {"mimeType": "application/pdf", "data": PNG}},
        {"inlineData": {"mimeType": "audio/mp3", "data": PNG}},
    ]


async def test_tools_round_trip(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    messages: list[dict[str, Any]] = user("weather in Paris?")
    out = await p.chat({"messages": messages, "tools": TOOLS, "tool_choice": "auto"})
    req = sent(up)
    assert req["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parameters": TOOLS[0]["function"]["parameters"],
                },
                {"name": "get_time"},  # Gemini rejects an OBJECT schema without properties
            ]
        }
    ]
    assert req["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call == {
        "id": f"call_0__thought__{SIGNATURE}",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert choice["message"]["content"] is None
    assert out["usage"]["completion_tokens"] == 5 + 7

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
    ]
    out = await p.chat({"messages": messages, "tools": TOOLS})
    assert out["choices"][0]["message"]["content"] == "tool said: sunny, 21C"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert sent(up)["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                }
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21C"}}}],
        },
    ]


async def test_tool_choice_modes(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    out = await p.chat({"messages": user("hi"), "tools": TOOLS, "tool_choice": "none"})
    assert sent(up)["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert out["choices"][0]["message"]["content"] == "echo: hi"

    await p.chat({"messages": user("hi"), "tools": TOOLS, "tool_choice": "required"})
    assert sent(up)["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    named = {"type": "function", "function": {"name": "get_time"}}
    out = await p.chat({"messages": user("hi"), "tools": TOOLS, "tool_choice": named})
    assert sent(up)["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


async def test_json_schema_only_tool_parameters_use_parameters_json_schema(
    up: Upstream, session: aiohttp.ClientSession
) -> None:
    params = {
        "type": "object",
        "properties": {"x": {"type": ["string", "null"]}},
        "additionalProperties": False,
    }
    tools = [{"type": "function", "function": {"name": "f", "parameters": params, "strict": True}}]
    await provider(up, session).chat({"messages": user("hi"), "tools": tools})
    assert sent(up)["tools"] == [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": params}]}]


async def test_finish_reasons_and_blocks(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    out = await p.chat({"messages": user("one two three four"), "max_tokens": 2})
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == "echo: one"

    out = await p.chat({"messages": user("please BLOCKME")})
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": None, "refusal": None},
        "finish_reason": "content_filter",
        "logprobs": None,
    }

    out = await p.chat({"messages": user("BLOCKPROMPT now")})
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["usage"]["prompt_tokens"] == 5
    assert out["usage"]["completion_tokens"] == 0


def test_missing_usage_is_estimated() -> None:
    data = {"candidates": [{"content": {"parts": [{"text": "abcdefgh"}]}, "finishReason": "STOP"}]}
    out = to_openai(data, {"messages": user("abcd")}, MODEL, 1)
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "estimated": True}
    assert out["model"] == MODEL


def test_unsupported_params_raise_400_before_any_request() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tool type 'custom'"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"tool_choice": "sometimes", "tools": TOOLS}, "tool_choice"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ]
    for extra, needle in cases:
        with pytest.raises(UpstreamError) as exc:
            to_gemini({"messages": user("hi"), **extra}, MODEL)
        assert exc.value.status == 400 and exc.value.kind == "http" and not exc.value.retryable
        assert needle in exc.value.message
    bad_args = [
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{x"}}]}
    ]
    with pytest.raises(UpstreamError, match="not valid JSON"):
        to_gemini({"messages": user("hi") + bad_args}, MODEL)
    with pytest.raises(UpstreamError, match="answers no earlier assistant tool call"):
        to_gemini({"messages": [*user("hi"), {"role": "tool", "tool_call_id": "zz", "content": "x"}]}, MODEL)
    with pytest.raises(UpstreamError, match="role 'wizard'"):
        to_gemini({"messages": [{"role": "wizard", "content": "x"}]}, MODEL)


# -- streaming ------------------------------------------------------------------------------------------


async def test_stream_text_chunks_and_final_usage(up: Upstream, session: aiohttp.ClientSession) -> None:
    chunks = await collect(provider(up, session), {"messages": user("hello big world"), "stream": True})
    req = up.requests()[-1]
    assert req["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert req["query"] == {"alt": "sse"}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-fakeResp123" for c in chunks)
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: hello big world"
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:5]] == ["echo:", " hello", " big", " world"]
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]
    # Exactly one usage chunk, last; it is the final cumulative usageMetadata, not a sum of the events'.
    assert [c for c in chunks if "usage" in c] == [chunks[-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 6,
        "completion_tokens": 4 + 7,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }


async def test_stream_tool_call_and_thoughts(up: Upstream, session: aiohttp.ClientSession) -> None:
    body = {"messages": user("weather?"), "tools": TOOLS, "thinking": {"type": "enabled"}}
    chunks = await collect(provider(up, session), body)
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"] == {"role": "assistant", "content": ""}
    assert deltas[1]["delta"] == {"reasoning_content": "Thinking it over."}
    assert deltas[2]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": f"call_0__thought__{SIGNATURE}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ]
    }
    assert deltas[3] == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}
    assert len(deltas) == 4
    assert chunks[-1]["usage"]["completion_tokens"] == 5 + 7


async def test_stream_n_candidates_and_content_filter(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    chunks = await collect(p, {"messages": user("hi"), "n": 2})
    for i in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i]
        assert "".join(d["delta"].get("content", "") for d in mine) == "echo: hi"
        assert mine[-1]["finish_reason"] == "stop"

    chunks = await collect(p, {"messages": user("BLOCKME")})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "content_filter"]
    chunks = await collect(p, {"messages": user("BLOCKPROMPT")})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "content_filter"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 4


async def test_stream_cut_midway(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(cut_after=2)
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as exc:
        async for chunk in provider(up, session).chat_stream({"messages": user("one two three four five")}):
            got.append(chunk)
    assert exc.value.kind == "connection" and exc.value.retryable
    assert got and all("usage" not in c for c in got)


async def test_stream_error_event_and_http_error(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=429, body=gemini_error(429, "Resource has been exhausted", retry_delay="4s"))
    with pytest.raises(UpstreamError) as exc:
        await collect(provider(up, session), {"messages": user("hi")})
    assert exc.value.status == 429 and exc.value.retry_after == 4.0 and exc.value.retryable

    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as exc:
        async for chunk in provider(up, session).chat_stream({"messages": user("STREAMERROR")}):
            got.append(chunk)
    assert [c["choices"][0]["delta"].get("content") for c in got] == ["", "partial"]
    assert exc.value.status == 503 and exc.value.retryable
    assert "UNAVAILABLE" in exc.value.message and "overloaded" in exc.value.message


# -- errors ---------------------------------------------------------------------------------------------


async def test_bad_key_is_400_as_google_says_and_key_redacted(
    up: Upstream, session: aiohttp.ClientSession
) -> None:
    up.api_key = "the-right-key"
    with pytest.raises(UpstreamError) as exc:
        await provider(up, session).chat({"messages": user("hi")})
    err = exc.value
    assert err.status == 400 and err.kind == "http" and not err.retryable
    assert "API key not valid" in err.message and "INVALID_ARGUMENT" in err.message
    assert KEY not in err.message and KEY not in str(err)

    with pytest.raises(UpstreamError) as exc:
        await provider(up, session, api_key=None).chat({"messages": user("hi")})
    assert exc.value.status == 403 and "PERMISSION_DENIED" in exc.value.message


async def test_error_message_echoing_key_is_redacted(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=401, body=gemini_error(401, f"key {KEY} was revoked"))
    with pytest.raises(UpstreamError) as exc:
        await provider(up, session).chat({"messages": user("hi")})
    assert exc.value.status == 401 and "UNAUTHENTICATED" in exc.value.message
    assert KEY not in exc.value.message and "***" in exc.value.message


async def test_429_retry_after_header_and_retry_info(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session)
    up.fail_next(status=429, retry_after="3")
    with pytest.raises(UpstreamError) as exc:
        await p.chat({"messages": user("hi")})
    assert exc.value.status == 429 and exc.value.retry_after == 3.0 and exc.value.retryable
    assert "RESOURCE_EXHAUSTED" in exc.value.message

    # Google sends no Retry-After header: the back-off is RetryInfo.retryDelay in the error details.
    up.fail_next(status=429, body=gemini_error(429, "Quota exceeded", retry_delay="37.5s"))
    with pytest.raises(UpstreamError) as exc:
        await p.chat({"messages": user("hi")})
    assert exc.value.retry_after == 37.5


async def test_500_and_timeout(up: Upstream, session: aiohttp.ClientSession) -> None:
    up.fail_next(status=500)
    with pytest.raises(UpstreamError) as exc:
        await provider(up, session).chat({"messages": user("hi")})
    assert exc.value.status == 500 and exc.value.retryable and "INTERNAL" in exc.value.message

    up.fail_next(delay=1.0)
    with pytest.raises(UpstreamError) as exc:
        await provider(up, session, timeout=0.3).chat({"messages": user("hi")})
    assert exc.value.kind == "timeout" and exc.value.retryable


async def test_non_google_error_body_keeps_plain_message(
    up: Upstream, session: aiohttp.ClientSession
) -> None:
    up.fail_next(status=503, body={"detail": "overloaded"})
    with pytest.raises(UpstreamError) as exc:
        await provider(up, session).chat({"messages": user("hi")})
    assert exc.value.status == 503 and exc.value.retryable


# -- embeddings -----------------------------------------------------------------------------------------


async def test_embeddings(up: Upstream, session: aiohttp.ClientSession) -> None:
    p = provider(up, session, model="gemini-embedding-001")
    out = await p.embed({"input": ["hello world", "bye"], "dimensions": 4})
    req = up.requests()[-1]
    assert req["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req["body"] == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "hello world"}]},
                "outputDimensionality": 4,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "bye"}]},
                "outputDimensionality": 4,
            },
        ]
    }
    assert out["object"] == "list" and [d["index"] for d in out["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 4 for d in out["data"])
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4, "estimated": True}

    b64 = await p.embed({"input": "hello world", "encoding_format": "base64"})
    raw = base64.b64decode(b64["data"][0]["embedding"])
    floats = struct.unpack(f"<{len(raw) // 4}f", raw)
    plain = (await p.embed({"input": "hello world"}))["data"][0]["embedding"]
    assert floats == pytest.approx(plain, abs=1e-6)

    with pytest.raises(UpstreamError) as exc:
        await p.embed({"input": [[1, 2, 3]]})
    assert exc.value.status == 400


def test_native_google_tools_pass_through() -> None:
    payload = to_gemini({"messages": user("hi"), "tools": [TOOLS[0], {"googleSearch": {}}]}, MODEL)
    assert payload["tools"][1:] == [{"googleSearch": {}}]
    assert payload["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    payload = to_gemini(
        {"messages": user("hi"), "tools": [{"codeExecution": {}}], "tool_choice": "auto"}, MODEL
    )
    assert payload["tools"] == [{"codeExecution": {}}]
