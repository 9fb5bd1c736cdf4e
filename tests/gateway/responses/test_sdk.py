"""The real `openai` SDK drives `/v1/responses` on the lab against loopback upstreams of every wire format:
OpenAI (native pass-through), an OpenAI server configured chat-only, Anthropic, Gemini and Ollama
(translated to chat). Create, stream, tools round trip, structured output, previous_response_id,
retrieve, delete and input_items; answers and events checked against OpenAI's schema; one ledger row each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel
from sqlalchemy import select

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, Gateway, Running, model, start_upstream
from tests.gateway import spec
from tests.gateway.responses.test_convert import check_event
from tests.upstreams import anthropic_server, gemini_server, ollama_server, openai_server

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
UPSTREAMS = {
    "openai-native": (openai_server, "openai/gpt-4o-mini", "/v1", {}),
    "openai-chat-only": (openai_server, "openai/gpt-4o-mini", "/v1", {"responses_api": False}),
    "anthropic": (anthropic_server, "anthropic/claude-sonnet-4-5", "", {}),
    "gemini": (gemini_server, "gemini/gemini-2.5-flash", "", {}),
    "ollama": (ollama_server, "ollama/llama3.2", "", {}),
}


class Answer(BaseModel):
    echo: str | None = None
    city: str | None = None  # Anthropic answers structured output through a tool call: {"city": "Paris"}


@pytest.fixture(params=list(UPSTREAMS))
def lab(request: pytest.FixtureRequest, make_gateway: Any) -> Iterator[tuple[str, Gateway, Running]]:
    name = request.param
    server, provider_model, suffix, info = UPSTREAMS[name]
    key = None if name == "ollama" else UPSTREAM_KEY
    running = start_upstream(name, server.make_app, api_key=key)
    entry = model("chat", provider_model, running.url + suffix, api_key=key)
    if info:
        entry["model_info"] = info
    gw = make_gateway({"model_list": [entry], "router_settings": {"num_retries": 0, "cooldown_time": 0}})
    yield name, gw, running
    running.server.stop()


def client_of(gw: Gateway, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def ledger_rows(gw: Gateway) -> list[Any]:
    gw.flush()
    r = schema.requests
    with gw.app.state.engine.connect() as conn:
        return list(conn.execute(select(r).order_by(r.c.id)).mappings().all())


def test_create_string_items_and_instructions(lab: Any) -> None:
    name, gw, up = lab
    client = client_of(gw)
    r = client.responses.create(model="chat", input="hello there")
    assert r.output_text == "echo: hello there" and r.status == "completed"
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    r2 = client.responses.create(
        model="chat",
        instructions="Answer briefly.",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "second question"}]},
        ],
        max_output_tokens=100,
        temperature=0.5,
        metadata={"team": "a"},
    )
    assert "second question" in r2.output_text and r2.metadata == {"team": "a"}
    assert r2.instructions == "Answer briefly." and r2.max_output_tokens == 100
    assert "Answer briefly." in json.dumps(up.up.log[-1]["body"])  # the instructions reached the upstream
    rows = ledger_rows(gw)
    assert [row["endpoint"] for row in rows] == [schema.ENDPOINT_RESPONSES] * 2
    if name.startswith("openai"):  # the upstream's own usage, from the body it sent
        sent = json.loads(up.up.responses[-1]["body"])["usage"]
        own = (
            (sent["input_tokens"], sent["output_tokens"])
            if "input_tokens" in sent
            else (sent["prompt_tokens"], sent["completion_tokens"])
        )
        assert (rows[-1]["prompt_tokens"], rows[-1]["completion_tokens"]) == own
    for row, resp in zip(rows, (r, r2), strict=True):
        assert resp.usage is not None
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            resp.usage.input_tokens,
            resp.usage.output_tokens,
        )
        assert row["status"] == 200 and not row["flags"] & schema.FLAG_STREAM


def test_raw_answers_and_events_match_the_schema(lab: Any) -> None:
    _, gw, _ = lab
    headers = {"Authorization": f"Bearer {MASTER}"}
    body = {"model": "chat", "input": "hello there", "tools": [TOOL]}
    got = httpx.post(f"{gw.base_url}/responses", json=body, headers=headers, timeout=30)
    assert got.status_code == 200, got.text
    spec.check("Response", got.json(), subset=False)
    for extra in ({}, {"tools": [TOOL]}):
        stream = httpx.post(
            f"{gw.base_url}/responses", json={**body, **extra, "stream": True}, headers=headers, timeout=30
        )
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(e.split("data: ", 1)[1]) for e in stream.text.split("\n\n") if "data: " in e]
        for e in events:
            check_event(e)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    bad = httpx.post(f"{gw.base_url}/responses", json={"model": "chat", "input": 5}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
    spec.check("ErrorResponse", bad.json(), subset=False)


def test_stream_events_in_order(lab: Any) -> None:
    _, gw, _ = lab
    client = client_of(gw)
    with client.responses.stream(model="chat", input="hello there") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "response.output_text.delta" in kinds
    assert final.output_text == "echo: hello there" and final.usage is not None
    deltas = [
        e.delta
        for e in client.responses.create(model="chat", input="hello there", stream=True)
        if e.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == "echo: hello there"
    rows = ledger_rows(gw)
    assert all(row["flags"] & schema.FLAG_STREAM for row in rows) and len(rows) == 2
    assert rows[0]["completion_tokens"] == final.usage.output_tokens
    # Stored before the stream ended: a follow-up the moment it finished finds it.
    follow = client.responses.create(model="chat", previous_response_id=final.id, input="and then?")
    assert follow.previous_response_id == final.id


def test_tools_round_trip_with_previous_response_id(lab: Any) -> None:
    _, gw, _ = lab
    client = client_of(gw)
    first = client.responses.create(model="chat", input="What is the weather in Paris?", tools=[TOOL])
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=[TOOL],
    )
    assert "sunny" in second.output_text and second.previous_response_id == first.id
    with client.responses.stream(model="chat", input="Weather in Paris?", tools=[TOOL]) as stream:
        kinds = [e.type for e in stream]
        streamed = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert [o.type for o in streamed.output if o.type == "function_call"] == ["function_call"]


def test_structured_output(lab: Any) -> None:
    _, gw, _ = lab
    client = client_of(gw)
    parsed = client.responses.parse(model="chat", input="hello there", text_format=Answer)
    assert parsed.output_parsed is not None
    assert "hello there" in (parsed.output_parsed.echo or "") or parsed.output_parsed.city == "Paris"
    fmt = {"type": "json_schema", "name": "answer", "schema": Answer.model_json_schema(), "strict": False}
    raw = client.responses.create(model="chat", input="hello there", text={"format": fmt})
    assert isinstance(json.loads(raw.output_text), dict)
    assert raw.text is not None and raw.text.format is not None and raw.text.format.type == "json_schema"


def test_conversation_state_retrieve_delete_and_input_items(lab: Any) -> None:
    _, gw, up = lab
    client = client_of(gw)
    first = client.responses.create(model="chat", input="my name is Ana")
    second = client.responses.create(model="chat", previous_response_id=first.id, input="what is my name?")
    sent = json.dumps(up.up.log[-1]["body"])
    assert "my name is Ana" in sent and first.output_text in sent  # the earlier turn went upstream
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].content[0].text == "what is my name?"
    unstored = client.responses.create(model="chat", input="x", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="chat", previous_response_id=first.id, input="again")
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
