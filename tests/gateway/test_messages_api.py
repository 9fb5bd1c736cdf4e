"""/v1/messages and /v1/messages/count_tokens driven by the real `anthropic` SDK and LangChain's
ChatAnthropic, against Anthropic- (native pass-through), OpenAI-, Gemini- and Ollama-speaking (translated)
loopback upstreams."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from ailab.config import load_config
from ailab.server import create_app
from tests.conftest import MASTER, UPSTREAM_KEY, Gateway, Running, model, start_upstream
from tests.upstreams import anthropic_server, gemini_server, ollama_server, openai_server
from tests.upstreams.harness import ServerThread

GROUPS = ("claude", "gpt", "gem", "llama")
UPSTREAM_OF = {"claude": "anthropic", "gpt": "openai", "gem": "gemini", "llama": "ollama"}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()


def start_all() -> dict[str, Running]:
    return {
        "anthropic": start_upstream("anthropic", anthropic_server.make_app),
        "openai": start_upstream("openai", openai_server.make_app),
        "gemini": start_upstream("gemini", gemini_server.make_app),
        "ollama": start_upstream("ollama", ollama_server.make_app, api_key=None),
    }


def model_list(u: dict[str, Running]) -> list[dict[str, Any]]:
    return [
        model("claude", "anthropic/claude-sonnet-4-5", u["anthropic"].url, api_key=UPSTREAM_KEY),
        model("gpt", "openai/gpt-4o-mini", f"{u['openai'].url}/v1", api_key=UPSTREAM_KEY),
        model("gem", "gemini/gemini-2.5-flash", u["gemini"].url, api_key=UPSTREAM_KEY),
        model(
            "llama",
            "ollama_chat/llama3.2",
            u["ollama"].url,
            model_info={"input_cost_per_token": 1e-7, "output_cost_per_token": 3e-7},
        ),
    ]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Running]]:
    servers = start_all()
    yield servers
    for s in servers.values():
        s.server.stop()


@pytest.fixture(scope="module")
def lab(upstreams: dict[str, Running], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the module's read-only tests (starting one per test costs more than the tests)."""
    tmp = tmp_path_factory.mktemp("messages-lab")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "xdg"))
        cfg = {
            "model_list": model_list(upstreams),
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
            "general_settings": {"master_key": MASTER},
            "ailab": {"discover_ollama": False, "ledger_flush_interval": 0.02},
        }
        path = tmp / "ailab.yaml"
        path.write_text(yaml.safe_dump(cfg))
        app = create_app(load_config(path, tmp / "data"))
        gw = Gateway(app, ServerThread(app).start(), path, tmp / "data")
        yield gw
        gw.stop()


def client(gw: Gateway, key: str = MASTER) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- create -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_create(lab: Gateway, group: str) -> None:
    msg = client(lab).messages.create(
        model=group, max_tokens=100, system="Be terse.", messages=user("hello there world")
    )
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "echo: hello there world"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_create_native_keeps_anthropic_fields_and_beta(lab: Gateway, upstreams: dict[str, Running]) -> None:
    up = upstreams["anthropic"].up
    c = anthropic.Anthropic(
        base_url=lab.url,
        api_key=MASTER,
        max_retries=0,
        default_headers={"anthropic-beta": "tools-2024-05-16"},
    )
    msg = c.messages.create(
        model="claude", max_tokens=3, messages=user("one two three four five"), stop_sequences=["never"]
    )
    assert msg.model == "claude-sonnet-4-5"  # the upstream's own answer, passed through
    assert msg.stop_reason == "max_tokens"
    sent = up.requests("/v1/messages")[-1]
    assert sent["headers"]["anthropic-beta"] == "tools-2024-05-16"
    assert sent["headers"]["x-api-key"] == UPSTREAM_KEY  # the deployment's key, never the client's
    assert sent["body"]["model"] == "claude-sonnet-4-5" and sent["body"]["stop_sequences"] == ["never"]


def test_bearer_auth_works_too(lab: Gateway) -> None:
    r = httpx.post(
        f"{lab.url}/v1/messages",
        json={"model": "gpt", "max_tokens": 10, "messages": user("hi")},
        headers={"Authorization": f"Bearer {MASTER}", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["request-id"] == r.headers["x-request-id"]


# -- stream -------------------------------------------------------------------------------------------


def sse_types(text: str) -> list[str]:
    return [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]


@pytest.mark.parametrize("group", GROUPS)
def test_stream(lab: Gateway, group: str) -> None:
    with client(lab).messages.stream(model=group, max_tokens=100, messages=user("stream me please")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "echo: stream me please"
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    body = {"model": group, "max_tokens": 100, "messages": user("order"), "stream": True}
    r = httpx.post(f"{lab.url}/v1/messages", json=body, headers={"x-api-key": MASTER})
    types = sse_types(r.text)
    assert types[:3] == ["message_start", "content_block_start", "ping"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[3:-3]) == {"content_block_delta"}


# -- tools --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("stream", [False, True])
def test_tools_round_trip(lab: Gateway, group: str, stream: bool) -> None:
    c = client(lab)
    messages: list[dict[str, Any]] = user("What is the weather in Paris?")
    kw: dict[str, Any] = {"model": group, "max_tokens": 200, "tools": [WEATHER]}
    if stream:
        with c.messages.stream(messages=messages, **kw) as s:  # type: ignore[arg-type]
            first = s.get_final_message()
    else:
        first = c.messages.create(messages=messages, **kw)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    final = c.messages.create(messages=messages, **kw)  # type: ignore[arg-type]
    assert final.stop_reason == "end_turn"
    assert final.content[-1].text == "tool said: sunny"  # type: ignore[union-attr]


@pytest.mark.parametrize("group", GROUPS)
def test_tool_choice_tool_forces_the_tool(lab: Gateway, group: str) -> None:
    msg = client(lab).messages.create(
        model=group,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=user("anything"),
    )
    assert any(b.type == "tool_use" and b.name == "get_weather" for b in msg.content)


# -- images -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_image_block(lab: Gateway, upstreams: dict[str, Running], group: str) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    msg = client(lab).messages.create(
        model=group,
        max_tokens=100,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "describe"}]}],  # type: ignore[list-item]
    )
    assert msg.content[0].text.split() == ["echo:", "describe"]  # type: ignore[union-attr]
    up = upstreams[UPSTREAM_OF[group]].up
    assert PNG in str(up.log[-1]["body"])  # the image reached the upstream, in its own wire format


# -- count_tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_count_tokens(lab: Gateway, upstreams: dict[str, Running], group: str) -> None:
    up = upstreams["anthropic"].up
    before = len(up.requests("count_tokens"))
    counted = client(lab).messages.count_tokens(
        model=group,
        system="Be terse.",
        messages=user("how many tokens is this"),
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert counted.input_tokens > 0
    native = len(up.requests("count_tokens")) - before
    assert native == (1 if group == "claude" else 0)
    if group == "claude":  # the fake counts words: tools, system, messages (+3 each)
        assert counted.input_tokens == 3 + 2 + 3 + 5


# -- LangChain ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_langchain_chat_anthropic(lab: Gateway, group: str) -> None:
    from langchain_anthropic import ChatAnthropic

    llm = ChatAnthropic(model=group, base_url=lab.url, api_key=MASTER, max_tokens=100, max_retries=0)  # type: ignore[call-arg]
    out = llm.invoke("hello langchain")
    assert out.content == "echo: hello langchain"
    assert out.usage_metadata is not None and out.usage_metadata["output_tokens"] > 0
    text = "".join(
        str(chunk.content)
        if isinstance(chunk.content, str)
        else "".join(p.get("text", "") for p in chunk.content if isinstance(p, dict))
        for chunk in llm.stream("hello stream")
    )
    assert text == "echo: hello stream"


# -- errors -------------------------------------------------------------------------------------------


def test_errors_in_anthropic_shape(lab: Gateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client(lab, "sk-wrong").messages.create(model="gpt", max_tokens=5, messages=user("x"))
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert auth.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(lab).messages.create(model="gpt", max_tokens=0, messages=user("x"))
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in bad.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client(lab).messages.create(model="nope", max_tokens=5, messages=user("x"))
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    r = httpx.post(f"{lab.url}/v1/messages", content=b"{not json", headers={"x-api-key": MASTER})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(
        f"{lab.url}/v1/messages/count_tokens", json={"model": "gpt"}, headers={"x-api-key": MASTER}
    )
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]


def test_thinking_passes_through_natively(lab: Gateway) -> None:
    msg = client(lab).messages.create(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("think first"),
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    with client(lab).messages.stream(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("t"),
    ) as s:
        final = s.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature  # type: ignore[union-attr]
