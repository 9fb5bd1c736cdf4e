from __future__ import annotations

import openai

from tests.conftest import MASTER, UPSTREAM_KEY, model


def test_chat_roundtrip(openai_upstream, make_gateway):
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
            ]
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER)
    r = client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == "echo: hello there"
    assert r.usage.prompt_tokens == 5
    stream = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: hi"
