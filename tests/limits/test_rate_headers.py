"""x-ratelimit-* headers (OpenAI's names and formats) on every /v1 answer to a key with rpm/tpm limits,
read with the real `openai` SDK, for the memory and the Redis backend; none for a key without limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ailab.access.records import Limits
from ailab.gateway.limits import go_duration
from tests.conftest import UPSTREAM_KEY, model

MSG = [{"role": "user", "content": "hello there"}]
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")
NAMES = [f"x-ratelimit-{w}-{k}" for k in ("requests", "tokens") for w in ("limit", "remaining", "reset")]


@pytest.fixture(params=["memory", "redis"])
def lab(request: pytest.FixtureRequest, openai_upstream, make_gateway) -> Iterator[dict[str, Any]]:
    limits: dict[str, Any] = {"backend": request.param}
    if request.param == "redis":
        limits["redis_url"] = request.getfixturevalue("redis_url")
        request.getfixturevalue("redis_client")  # an empty DB
    base = f"{openai_upstream.url}/v1"
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", base, api_key=UPSTREAM_KEY),
                model("emb", "openai/text-embedding-3-small", base, api_key=UPSTREAM_KEY),
            ],
            "router_settings": {"num_retries": 0},
        },
        limits=limits,
    )
    access = gw.app.state.access
    uid = access.identity.create_user("test", "rl", "user").id
    _, limited = access.keys.create("test", user=uid, name="lim", limits=Limits(rpm=3, tpm=10_000))
    _, free = access.keys.create("test", user=uid, name="free", limits=Limits())
    access.cache.load()

    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)

    yield {"limited": client(limited), "free": client(free), "url": gw.url, "key": limited}


def test_headers_count_down_and_come_with_the_429(lab: dict[str, Any]) -> None:
    chat = lab["limited"].chat.completions
    seen = []
    for _ in range(2):
        raw = chat.with_raw_response.create(model="gpt", messages=MSG, max_tokens=5)
        assert all(n in raw.headers for n in NAMES), dict(raw.headers)
        seen.append(raw.headers)
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["2", "1"]
    assert seen[0]["x-ratelimit-limit-requests"] == "3"
    assert seen[0]["x-ratelimit-limit-tokens"] == "10000"
    left = [int(h["x-ratelimit-remaining-tokens"]) for h in seen]
    assert 10_000 > left[0] > left[1]  # the first request's reservation is settled at its real usage
    assert all(DURATION.match(h[f"x-ratelimit-reset-{k}"]) for h in seen for k in ("requests", "tokens"))
    # Another endpoint, the same window (one request left), then the 429.
    emb = lab["limited"].embeddings.with_raw_response.create(model="emb", input="hi")
    assert emb.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as exc:
        chat.create(model="gpt", messages=MSG, max_tokens=5)
    headers = exc.value.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert DURATION.match(headers["x-ratelimit-reset-requests"])
    assert "retry-after" in headers and "x-request-id" in headers


def test_streams_get_them_and_free_keys_do_not(lab: dict[str, Any]) -> None:
    with lab["limited"].chat.completions.with_streaming_response.create(
        model="gpt", messages=MSG, stream=True
    ) as raw:
        assert raw.headers["x-ratelimit-remaining-requests"] == "2"
        list(raw.iter_lines())
    # The Anthropic-shaped endpoint and the legacy completions count in the same window.
    body = {"model": "gpt", "max_tokens": 5, "messages": MSG}
    msg = httpx.post(f"{lab['url']}/v1/messages", json=body, headers={"x-api-key": lab["key"]}, timeout=10)
    assert msg.status_code == 200 and msg.headers["x-ratelimit-remaining-requests"] == "1"
    done = lab["limited"].completions.with_raw_response.create(model="gpt", prompt="hi", max_tokens=5)
    assert done.headers["x-ratelimit-remaining-requests"] == "0"
    raw = lab["free"].chat.completions.with_raw_response.create(model="gpt", messages=MSG)
    assert not [n for n in raw.headers if n.startswith("x-ratelimit-")]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.12, "120ms"),
        (1, "1s"),
        (59.5, "59.5s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
    ],
)
def test_reset_is_written_like_openai(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
