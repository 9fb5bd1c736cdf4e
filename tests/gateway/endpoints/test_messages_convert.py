"""The pure Anthropic Messages ⇄ chat mapping: validation, requests, answers, stream events, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ailab.gateway.endpoints.messages_convert import (
    anthropic_usage,
    estimate_input_tokens,
    native_usage,
    to_chat,
    to_message,
)
from ailab.gateway.endpoints.messages_errors import error_body, error_type
from ailab.gateway.endpoints.messages_stream import ChatToEvents, NativeEvents, sse
from ailab.gateway.endpoints.messages_validate import validate_messages
from ailab.gateway.errors import GatewayError
from ailab.gateway.providers.anthropic_convert import to_anthropic
from ailab.gateway.types import RawEvents, UpstreamError, Usage

TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def req(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return body


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_use"}]}]}, "messages.0.content.0.type"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "source"),
        ({"system": [{"type": "image"}]}, "system.0"),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"tools": [{"name": "x"}]}, "tools.0.input_schema"),
        ({"tools": [TOOL], "tool_choice": {"type": "required"}}, "tool_choice.type"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "other"}}, "tool_choice.name"),
    ],
)
def test_invalid_requests_name_the_field(change: dict[str, Any], where: str) -> None:
    body = {k: v for k, v in {**req(), **change}.items() if v is not None}
    with pytest.raises(GatewayError) as exc:
        validate_messages(body)
    assert exc.value.status == 400 and where in exc.value.message
    assert error_body(exc.value)["error"]["type"] == "invalid_request_error"


def test_count_tokens_needs_no_max_tokens() -> None:
    body = req()
    del body["max_tokens"]
    validate_messages(body, count_only=True)


# -- request ------------------------------------------------------------------------------------------


def test_request_maps_params_system_and_stream() -> None:
    body = req(
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        stream=True,
    )
    chat = to_chat(body, "ollama")
    assert chat == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop": ["END"],
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "top_k" not in to_chat(body, "openai")  # OpenAI refuses unknown sampling fields


def test_tool_round_trip_and_images_map_to_chat_and_back() -> None:
    """Inverse of the chat -> Messages converter: Messages -> chat -> Messages gives the request back."""
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    body = req(
        messages=messages, tools=[TOOL], tool_choice={"type": "any", "disable_parallel_tool_use": True}
    )
    chat = to_chat(body)
    assert chat["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA"},
    }
    assert chat["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    back = to_anthropic(chat, "m")
    assert back["messages"][1]["content"] == messages[1]["content"]
    assert back["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    ]
    assert back["messages"][0]["content"][1]["source"] == messages[0]["content"][1]["source"]
    assert back["tools"] == [TOOL]
    assert back["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_choice_tool_and_none() -> None:
    chat = to_chat(req(tools=[TOOL], tool_choice={"type": "tool", "name": "get_weather"}))
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert to_chat(req(tools=[TOOL], tool_choice={"type": "none"}))["tool_choice"] == "none"


def test_features_other_providers_lack_are_a_400_upstream_error() -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    with pytest.raises(UpstreamError) as exc:
        to_chat(req(tools=[server_tool]))
    assert exc.value.status == 400 and not exc.value.retryable


def test_thinking_blocks_are_dropped_on_translation() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}]},
        {"role": "user", "content": "again"},
    ]
    assert to_chat(req(messages=messages))["messages"][1] == {"role": "assistant", "content": ""}


# -- response -----------------------------------------------------------------------------------------


def test_chat_answer_becomes_a_message() -> None:
    chat = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }
    msg = to_message(chat, "m")
    assert msg["id"] == "msg_chatcmpl-1" and msg["type"] == "message" and msg["model"] == "m"
    assert msg["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_9", "name": "f", "input": {"a": 1}},
    ]
    assert msg["stop_reason"] == "tool_use" and msg["stop_sequence"] is None
    assert msg["usage"] == {
        "input_tokens": 20,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }


@pytest.mark.parametrize(
    ("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_stop_reasons(finish: str, stop: str) -> None:
    chat = {"choices": [{"finish_reason": finish, "message": {"content": "x"}}]}
    assert to_message(chat, "m")["stop_reason"] == stop


def test_native_usage_keeps_cache_tokens() -> None:
    raw = {"usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 100}}
    usage = native_usage(raw)
    assert usage == Usage(prompt_tokens=105, completion_tokens=2, cached_tokens=100)
    assert anthropic_usage(usage)["input_tokens"] == 5


def test_estimates_read_system_messages_and_tools() -> None:
    body = req(system="s" * 40, tools=[TOOL])
    assert estimate_input_tokens(body) > estimate_input_tokens(req())


# -- streams ------------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **kw: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-2", "object": "chat.completion.chunk", "choices": choices, **kw}


def test_chat_chunks_become_anthropic_events_in_order() -> None:
    conv = ChatToEvents(model="m")
    events: list[dict[str, Any]] = []
    usage = {"prompt_tokens": 9, "completion_tokens": 4}
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
    for c in (
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        chunk(None, usage=usage),
    ):
        events += conv.feed(c)
    events += conv.end()
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["id"] == "msg_chatcmpl-2"
    assert events[6]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    assert events[7] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
    }
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"]["input_tokens"] == 9 and events[-2]["usage"]["output_tokens"] == 4
    assert conv.usage == Usage(prompt_tokens=9, completion_tokens=4)


def test_raw_pass_through_chunks_are_parsed() -> None:
    conv = ChatToEvents(model="m")
    payload = orjson.dumps(chunk({"content": "hey"}))
    events = conv.feed(RawEvents(b"data: " + payload + b"\n\n", [payload]))
    assert events[-1]["delta"] == {"type": "text_delta", "text": "hey"}


def test_an_empty_stream_still_closes_properly() -> None:
    assert [e["type"] for e in ChatToEvents(model="m").end()] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]


def test_native_events_forwarded_with_usage() -> None:
    native = NativeEvents()
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "usage": {"input_tokens": 3, "output_tokens": 1, "cache_creation_input_tokens": 50},
        },
    }
    _event, wire = native.wire(orjson.dumps(start))
    assert wire.startswith(b"event: message_start\ndata: {") and wire.endswith(b"\n\n")
    native.wire(orjson.dumps({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 6}}))
    native.wire(b'{"type":"message_stop"}')
    assert native.stopped
    assert native.usage == Usage(prompt_tokens=53, completion_tokens=6, cache_write_tokens=50)


def test_sse_and_error_types() -> None:
    assert sse({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert error_type(529) == "overloaded_error" and error_type(404) == "not_found_error"
    assert error_type(418) == "invalid_request_error" and error_type(599) == "api_error"
    body = error_body(GatewayError(429, "slow down"), "rid")
    assert body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": "rid",
    }
