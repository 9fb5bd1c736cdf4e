"""What the gateway sends matches OpenAI's official schemas, whichever adapter built it: chat completions,
stream chunks, embeddings, the model list and errors (validated with jsonschema against the spec)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.gateway import spec
from tests.upstreams import anthropic_server, gemini_server, ollama_server, openai_server

HEADERS = {"Authorization": f"Bearer {MASTER}"}
MSG = [{"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ADAPTERS = {
    "openai": (openai_server, "openai/gpt-4o-mini", "openai/text-embedding-3-small", "/v1"),
    "anthropic": (anthropic_server, "anthropic/claude-sonnet-4-5", None, ""),
    "gemini": (gemini_server, "gemini/gemini-2.5-flash", "gemini/text-embedding-004", ""),
    "ollama": (ollama_server, "ollama/llama3.2", "ollama/nomic-embed-text", ""),
}


@pytest.fixture(params=list(ADAPTERS))
def lab(request, make_gateway) -> Iterator[tuple[str, str]]:
    name = request.param
    server, chat_model, embed_model, suffix = ADAPTERS[name]
    key = None if name == "ollama" else UPSTREAM_KEY
    running = start_upstream(name, server.make_app, api_key=key)
    models = [model("chat", chat_model, running.url + suffix, api_key=key)]
    if embed_model:
        models.append(model("embed", embed_model, running.url + suffix, api_key=key))
    gw = make_gateway({"model_list": models, "router_settings": {"num_retries": 0, "cooldown_time": 0}})
    yield name, gw.base_url
    running.server.stop()


def _post(base: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}/{path}", json=body, headers=HEADERS, timeout=30)


def _events(text: str) -> list[dict[str, Any]]:
    assert text.endswith("data: [DONE]\n\n")
    return [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]


def test_chat_responses_match_the_schema(lab) -> None:
    name, base = lab
    bodies: list[dict[str, Any]] = [
        {"model": "chat", "messages": MSG},
        {"model": "chat", "messages": MSG, "tools": TOOLS},
        {"model": "chat", "messages": MSG, "tools": TOOLS, "tool_choice": "none"},
    ]
    if name in ("openai", "ollama"):
        bodies.append({"model": "chat", "messages": MSG, "logprobs": True, "top_logprobs": 2})
    for body in bodies:
        r = _post(base, "chat/completions", body)
        assert r.status_code == 200, r.text
        data = r.json()
        spec.check("CreateChatCompletionResponse", data)
        assert all("refusal" in c["message"] and "logprobs" in c for c in data["choices"])
        if body.get("logprobs"):
            assert data["choices"][0]["logprobs"]["content"]


def test_stream_chunks_match_the_schema(lab) -> None:
    _, base = lab
    for extra in ({}, {"tools": TOOLS}, {"stream_options": {"include_usage": True}}):
        body = {"model": "chat", "messages": MSG, "stream": True, **extra}
        r = _post(base, "chat/completions", body)
        assert r.status_code == 200, r.text
        events = _events(r.text)
        assert events
        for event in events:
            spec.check("CreateChatCompletionStreamResponse", event)
        assert any(c.get("finish_reason") for e in events for c in e["choices"])
        if extra.get("stream_options"):
            assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0


def test_embeddings_models_and_errors_match_the_schema(lab) -> None:
    name, base = lab
    if ADAPTERS[name][2]:
        for fmt in ("float", "base64"):
            r = _post(base, "embeddings", {"model": "embed", "input": ["a b", "c"], "encoding_format": fmt})
            assert r.status_code == 200, r.text
            data = r.json()
            if fmt == "base64":  # the spec types embedding as numbers only; OpenAI sends base64 as a string
                assert all(isinstance(base64.b64decode(d["embedding"]), bytes) for d in data["data"])
                data = {**data, "data": [{**d, "embedding": [0.0]} for d in data["data"]]}
            spec.check("CreateEmbeddingResponse", data)
    models = httpx.get(f"{base}/models", headers=HEADERS)
    spec.check("ListModelsResponse", models.json())
    for body in ({"model": "nope", "messages": MSG}, {"model": "chat", "messages": []}):
        err = _post(base, "chat/completions", body)
        assert err.status_code in (400, 404)
        spec.check("ErrorResponse", err.json())
