"""The pure parts of the Responses API: request checks with OpenAI's param names, the translation to chat,
Response objects and stream events (validated against OpenAI's official schema)."""

from __future__ import annotations

from typing import Any

import pytest

from ailab.gateway.errors import GatewayError
from ailab.gateway.responses.events import ChatToEvents
from ailab.gateway.responses.from_chat import from_chat, skeleton
from ailab.gateway.responses.request import normalise, validate
from ailab.gateway.responses.to_chat import to_chat
from ailab.gateway.types import Usage
from tests.gateway import spec

TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
}


def check_event(event: dict[str, Any]) -> None:
    spec.check(EVENT_SCHEMAS[event["type"]], event, subset=False)
    spec.check("ResponseStreamEvent", event, subset=False)


def _error(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        validate(body)
        normalise(body["input"])
    return info.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"model": "m", "input": "hi", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "hi", "metadata": {"a": 1}}, "metadata.a"),
        ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format.name"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"model": "m", "input": ["x", {"type": "function_call_output", "output": "1"}]}, "input[0]"),
        ({"model": "m", "input": [{"type": "function_call_output", "output": "1"}]}, "input[0].call_id"),
    ],
)
def test_bad_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    err = _error(body)
    assert err.status == 400 and err.param == param, err.message
    spec.check("ErrorResponse", err.body())


def test_items_translate_to_chat_messages() -> None:
    items = normalise(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]
    )
    assert all(i["id"] for i in items)
    body = {
        "model": "m",
        "instructions": "sys",
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 50,
        "temperature": 0.3,
        "metadata": {"k": "v"},
        "text": {
            "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
        },
    }
    chat = to_chat(body, [], items)
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert chat["tools"][0]["function"]["name"] == "get_weather"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["max_completion_tokens"] == 50 and chat["temperature"] == 0.3
    assert chat["response_format"]["json_schema"] == {
        "name": "w",
        "schema": {"type": "object"},
        "strict": True,
    }
    assert "metadata" not in chat


def test_hosted_tools_are_refused_when_translated() -> None:
    with pytest.raises(GatewayError) as info:
        to_chat({"model": "m", "tools": [{"type": "web_search"}]}, [], normalise("hi"))
    assert info.value.param == "tools[0].type"


def test_chat_completion_becomes_a_valid_response() -> None:
    body = {"model": "m", "input": "hi", "tools": [TOOL], "metadata": {"k": "v"}}
    chat = {
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "let me see",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
            }
        ],
    }
    resp = from_chat(body, chat, "resp_1", Usage(prompt_tokens=5, completion_tokens=3, cached_tokens=1))
    spec.check("Response", resp, subset=False)
    assert [i["type"] for i in resp["output"]] == ["message", "function_call"]
    assert resp["usage"]["total_tokens"] == 8 and resp["usage"]["input_tokens_details"]["cached_tokens"] == 1
    assert resp["metadata"] == {"k": "v"} and resp["status"] == "completed"
    cut = from_chat(
        body, {"choices": [{"finish_reason": "length", "message": {"content": "x"}}]}, "r", Usage()
    )
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    spec.check("Response", cut, subset=False)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_text_stream_events_in_order_and_valid() -> None:
    t = ChatToEvents(skeleton({"model": "m"}, "resp_1", "m"))
    events = t.start()
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "he"}),
        _chunk({"content": "llo"}),
    ):
        events += t.feed(chunk)
    events += t.feed(_chunk({}, "stop"))
    events += t.finish(Usage(prompt_tokens=4, completion_tokens=2))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "hello"
    assert events[-1]["response"]["usage"]["output_tokens"] == 2
    for e in events:
        check_event(e)


def test_tool_call_stream_events_in_order_and_valid() -> None:
    t = ChatToEvents(skeleton({"model": "m", "tools": [TOOL]}, "resp_1", "m"))
    events = t.start()
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    events += t.feed(_chunk({"tool_calls": [call]}))
    events += t.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}))
    events += t.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}))
    events += t.feed(_chunk({}, "tool_calls"))
    events += t.finish(Usage(prompt_tokens=4, completion_tokens=5))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]["output"][0]
    assert final["arguments"] == '{"city":"Paris"}' and final["call_id"] == "c1"
    for e in events:
        check_event(e)


def test_failed_and_incomplete_streams_are_valid() -> None:
    t = ChatToEvents(skeleton({"model": "m"}, "resp_1", "m"))
    events = [*t.start(), *t.feed(_chunk({"content": "x"})), *t.fail("server_error", "upstream cut")]
    assert events[-1]["type"] == "response.failed"
    t2 = ChatToEvents(skeleton({"model": "m"}, "resp_2", "m"))
    events2 = [*t2.start(), *t2.feed(_chunk({"content": "x"}, "length")), *t2.finish(Usage())]
    assert events2[-1]["type"] == "response.incomplete"
    for e in [*events, *events2]:
        check_event(e)
