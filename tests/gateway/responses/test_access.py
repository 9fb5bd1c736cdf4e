"""/v1/responses under the lab's access rules: stored responses belong to the key that made them (another
key gets 404), a model-scoped key cannot reach another model, rate limits apply; upstream failures and cut
streams answer in OpenAI's shapes; Azure deployments are served natively; LangChain's ChatOpenAI works with
`use_responses_api=True`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, Gateway, Running, model
from tests.gateway.responses.test_sdk import TOOL, client_of, ledger_rows


@pytest.fixture
def lab(
    openai_upstream: Running, make_gateway: Any
) -> tuple[Gateway, Running, dict[str, str], dict[str, str]]:
    base = f"{openai_upstream.url}/v1"
    gw = make_gateway(
        {
            "model_list": [
                model("native", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
                model(
                    "translated",
                    "openai/gpt-4o-mini",
                    base,
                    api_key=UPSTREAM_KEY,
                    model_info={"responses_api": False},
                ),
                model("azure", "azure/my-deployment", openai_upstream.url, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0, "cooldown_time": 0},
        }
    )
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    user = admin.post("/api/users", json={"username": "ana", "password": "correct-horse-battery"}).json()
    scoped = admin.post("/api/keys", json={"user_id": user["id"], "name": "s", "models": ["native"]}).json()
    limited = admin.post("/api/keys", json={"user_id": user["id"], "name": "l", "rpm": 1}).json()
    return gw, openai_upstream, scoped, limited


def test_budgets_reserve_by_max_output_tokens(lab: Any) -> None:
    gw, _, _, _ = lab
    admin = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
    user = admin.post("/api/users", json={"username": "bo", "password": "correct-horse-battery"}).json()
    key = admin.post("/api/keys", json={"user_id": user["id"], "name": "b", "max_budget_usd": 0.001}).json()
    client = client_of(gw, key["key"])
    # gpt-4o-mini: $0.60 per million output tokens; 1,000 fit the budget, 2,000 cannot be reserved.
    assert (
        client.responses.create(model="native", input="hi", max_output_tokens=1000).output_text == "echo: hi"
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="translated", input="hi", max_output_tokens=2000)
    assert info.value.body["code"] == "budget_exceeded"  # type: ignore[index]


def test_stored_responses_belong_to_their_key(lab: Any) -> None:
    gw, _, scoped, _ = lab
    mine = client_of(gw).responses.create(model="native", input="hello there")
    other = client_of(gw, scoped["key"])
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError) as info:
        other.responses.create(model="native", input="x", previous_response_id=mine.id)
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert client_of(gw).responses.retrieve(mine.id).id == mine.id  # still there for its owner


def test_scoped_key_and_rate_limits(lab: Any) -> None:
    gw, _, scoped, limited = lab
    other = client_of(gw, scoped["key"])
    assert other.responses.create(model="native", input="hi").output_text == "echo: hi"
    for name in ("translated", "azure"):
        with pytest.raises(openai.NotFoundError) as info:
            other.responses.create(model=name, input="hi")
        assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"  # type: ignore[index]
    slow = client_of(gw, limited["key"])
    statuses = []
    for _ in range(3):  # 3: a minute may roll over once
        try:
            slow.responses.create(model="native", input="hi")
            statuses.append(200)
        except openai.RateLimitError:
            statuses.append(429)
    assert statuses[0] == 200 and statuses[-1] == 429
    rows = ledger_rows(gw)
    assert {row["endpoint"] for row in rows} == {schema.ENDPOINT_RESPONSES}
    assert [row["status"] for row in rows][-1] == 429


def test_azure_is_native_and_openai_chat_only_is_translated(lab: Any) -> None:
    gw, up, _, _ = lab
    client = client_of(gw)
    for name, path in (
        ("azure", "/openai/responses"),
        ("native", "/v1/responses"),
        ("translated", "/v1/chat/completions"),
    ):
        r = client.responses.create(model=name, input="hello there", tools=[TOOL], tool_choice="none")
        assert r.output_text == "echo: hello there", name
        sent = up.up.log[-1]
        assert sent["path"] == path, name
        if name == "azure":
            assert sent["headers"]["api-key"] == UPSTREAM_KEY and sent["body"]["model"] == "my-deployment"
        if path.endswith("responses"):
            assert sent["body"]["store"] is False  # the lab holds the state


def test_hosted_tools_pass_natively_and_are_refused_when_translated(lab: Any) -> None:
    gw, up, _, _ = lab
    client = client_of(gw)
    hosted: Any = [{"type": "web_search"}]
    assert client.responses.create(model="native", input="hi", tools=hosted).output_text == "echo: hi"
    assert up.up.log[-1]["body"]["tools"] == hosted
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="translated", input="hi", tools=hosted)
    assert info.value.body["param"] == "tools[0].type"  # type: ignore[index]


def test_upstream_errors_and_cut_streams(lab: Any) -> None:
    gw, up, _, _ = lab
    client = client_of(gw)
    for name in ("native", "translated"):
        up.up.fail_next(
            status=400,
            body={
                "error": {
                    "message": "bad thing",
                    "type": "invalid_request_error",
                    "param": "input",
                    "code": "bad",
                }
            },
        )
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model=name, input="hi")
        assert info.value.body["param"] == "input" and "bad thing" in info.value.body["message"]  # type: ignore[index]
        up.up.fail_next(cut_after=3)
        r = httpx.post(
            f"{gw.base_url}/responses",
            json={"model": name, "input": "one two three four", "stream": True},
            headers={"Authorization": f"Bearer {MASTER}"},
            timeout=30,
        )
        events = [json.loads(e.split("data: ", 1)[1]) for e in r.text.split("\n\n") if "data: " in e]
        assert events[0]["type"] == "response.created"
        assert "error" in [e["type"] for e in events] and "response.completed" not in [
            e["type"] for e in events
        ]
    rows = ledger_rows(gw)
    assert [row["status"] >= 400 for row in rows] == [True] * 4


def test_langchain_chat_openai_with_the_responses_api(lab: Any) -> None:
    gw, _, _, _ = lab

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    for name in ("native", "translated"):
        llm = ChatOpenAI(
            model=name, base_url=gw.base_url, api_key=MASTER, use_responses_api=True, max_retries=0
        )
        assert llm.invoke("hello there").text == "echo: hello there"
        assert "".join(c.text for c in llm.stream("hello there")) == "echo: hello there"
        called = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
        assert called.tool_calls and called.tool_calls[0]["args"] == {"city": "Paris"}
