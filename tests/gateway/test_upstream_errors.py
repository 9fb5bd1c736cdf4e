"""Upstream 4xx keep their meaning: the upstream's code, param and type reach the client, the message names
the provider as configured, and no secret leaks."""

from __future__ import annotations

import openai
import pytest
from sqlalchemy import select

from ailab.ledger import schema
from tests.conftest import MASTER, UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(openai_upstream, make_gateway):
    base = f"{openai_upstream.url}/v1"
    return make_gateway(
        {
            "model_list": [
                model("vllm", "hosted_vllm/meta-llama/Llama-3.1-8B", base, api_key=UPSTREAM_KEY),
                model("oai", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 1, "retry_backoff": 0.01, "cooldown_time": 0},
        }
    )


@pytest.fixture
def client(gw):
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)


CASES = [
    (
        {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
        400,
    ),
    (
        {
            "message": "Invalid 'temperature': decimal above maximum value.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        },
        400,
    ),
    ({"message": "You exceeded your current quota", "type": "insufficient_quota", "param": None,
      "code": "insufficient_quota"}, 429),
]  # fmt: skip


@pytest.mark.parametrize(("error", "status"), CASES)
def test_upstream_code_param_and_type_pass_through(client, gw, openai_upstream, error, status) -> None:
    openai_upstream.up.fail_next(2, status=status, body={"error": error})
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="vllm", messages=MSG)
    body = exc.value.body
    assert exc.value.status_code == status
    assert (body["code"], body["param"], body["type"]) == (error["code"], error["param"], error["type"])
    assert error["message"] in body["message"]
    assert body["message"].startswith("hosted_vllm upstream error") and "openai" not in body["message"]
    gw.flush()
    d = schema.dims
    with gw.app.state.engine.connect() as conn:
        names = conn.execute(select(d.c.value).where(d.c.kind == "error")).scalars().all()
    assert error["code"] in names


def test_openai_label_and_redaction(client, openai_upstream) -> None:
    error = {"message": f"bad key {UPSTREAM_KEY}", "type": "invalid_request_error", "param": UPSTREAM_KEY,
             "code": "invalid_value"}  # fmt: skip
    openai_upstream.up.fail_next(status=400, body={"error": error})
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="oai", messages=MSG)
    assert exc.value.body["message"].startswith("openai upstream error 400")
    assert UPSTREAM_KEY not in exc.value.response.text
    assert exc.value.body["code"] == "invalid_value"
