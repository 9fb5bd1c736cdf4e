"""With no models configured, `ailab up` serves what a local Ollama reports (and says how to add models)."""

from __future__ import annotations

import logging

import openai

from tests.conftest import MASTER, start_upstream
from tests.upstreams import ollama_server


def test_discovers_local_ollama_models(make_gateway):
    ollama = start_upstream("ollama", ollama_server.make_app, api_key=None)
    try:
        gw = make_gateway({}, discover_ollama=True, ollama_url=ollama.url)
        client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
        assert set(ollama_server.MODELS) <= {m.id for m in client.models.list()}
        r = client.chat.completions.create(
            model="llama3.2:latest", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content == "echo: hi"
        assert ollama.up.requests("/api/chat")[-1]["body"]["model"] == "llama3.2:latest"
        # as with Ollama itself, the bare name reaches the :latest tag
        r = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "echo: hi"
        assert ollama.up.requests("/api/chat")[-1]["body"]["model"] == "llama3.2:latest"
    finally:
        ollama.server.stop()


def test_no_models_and_no_ollama_still_starts_and_says_how(make_gateway, caplog):
    caplog.set_level(logging.WARNING)
    gw = make_gateway({}, discover_ollama=True, ollama_url="http://127.0.0.1:9")
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    assert list(client.models.list()) == []
    assert "Add models to ailab.yaml" in caplog.text
