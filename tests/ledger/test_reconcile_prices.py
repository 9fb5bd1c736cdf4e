"""Ledger cost equals genai-prices' own `calc_price` over the usage each upstream reported in its own wire
format, read by genai-prices' own extractors (`extract_usage`): Anthropic cache writes of both lifetimes
(5 minutes and 1 hour) and cache reads, OpenAI cached, reasoning and audio tokens, Gemini cached and
thinking tokens; streamed and not."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
from genai_prices import calc_price, extract_usage
from sqlalchemy import text

from ailab.db import make_engine
from ailab.ledger import totals
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.ledger.test_reconcile import _json_lines
from tests.upstreams import anthropic_server, gemini_server, openai_server

GROUPS = {  # group -> (provider prefix/model, the price library's provider and model)
    "gpt": ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
    "o4": ("openai/o4-mini", "openai", "o4-mini"),
    "audio": ("openai/gpt-audio", "openai", "gpt-audio"),
    "claude": ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini/gemini-2.5-flash", "google", "gemini-2.5-flash"),
}


def own_response(name: str, body: bytes) -> dict[str, Any]:
    """The upstream's response as one object in its own format (a stream folded as its API documents)."""
    events = _json_lines(body)
    if len(events) == 1:
        return events[0]
    if name == "anthropic":  # message_start has the input usage; message_delta the cumulative output
        start = next(e["message"] for e in events if e["type"] == "message_start")
        out = [e["usage"]["output_tokens"] for e in events if e["type"] == "message_delta"][-1]
        return {"model": start["model"], "usage": {**start["usage"], "output_tokens": out}}
    if name == "gemini":  # usageMetadata is cumulative: the last one is the request's
        return [e for e in events if "usageMetadata" in e][-1]
    return [e for e in events if e.get("usage")][-1]  # OpenAI: the usage chunk


def library_cost(name: str, group: str, body: bytes) -> Decimal:
    _, provider, ref = GROUPS[group]
    flavor = {"openai": "chat"}.get(name, "default")
    extracted = extract_usage(own_response(name, body), provider_id=provider, api_flavor=flavor)
    return calc_price(extracted.usage, model_ref=ref, provider_id=provider).total_price


def _messages(system: list[dict[str, Any]], question: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def test_cost_equals_the_price_librarys_over_each_upstreams_own_usage(make_gateway, database_url):
    ups = {
        "openai": start_upstream("openai", openai_server.make_app),
        "anthropic": start_upstream("anthropic", anthropic_server.make_app),
        "gemini": start_upstream("gemini", gemini_server.make_app),
    }
    try:
        _run(ups, make_gateway, database_url)
    finally:
        for s in ups.values():
            s.server.stop()


def _run(ups: dict[str, Any], make_gateway: Any, database_url: str) -> None:
    base = {
        "openai": f"{ups['openai'].url}/v1",
        "anthropic": ups["anthropic"].url,
        "gemini": ups["gemini"].url,
    }
    gw = make_gateway(
        {
            "model_list": [
                model(g, m, base[m.split("/")[0]], api_key=UPSTREAM_KEY) for g, (m, _, _) in GROUPS.items()
            ],
            "general_settings": {"database_url": database_url},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    long_system = [{"type": "text", "text": "You are terse and exact. " * 260}]  # > 1,024 tokens: cached
    for group in ("gpt", "o4", "gemini"):
        for i in range(3):
            msgs = _messages(long_system, f"question {i}")
            client.chat.completions.create(model=group, messages=msgs)
            list(client.chat.completions.create(model=group, messages=msgs, stream=True))
    for i in range(3):  # a 1-hour breakpoint, then a 5-minute one; new each round, so both are written
        system = [
            {
                "type": "text",
                "text": f"Reference {i}. " * 60,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {"type": "text", "text": f"Style {i}. " * 30, "cache_control": {"type": "ephemeral"}},
        ]
        client.chat.completions.create(model="claude", messages=_messages(system, "first"))
        list(client.chat.completions.create(model="claude", messages=_messages(system, "again"), stream=True))
        list(
            client.chat.completions.create(model="claude", messages=_messages(system[:1], "new"), stream=True)
        )
    audio = [
        {"type": "text", "text": "What is said here?"},
        {"type": "input_audio", "input_audio": {"data": "UklGRgAAAABXQVZF", "format": "wav"}},
    ]
    client.chat.completions.create(
        model="audio",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        messages=[{"role": "user", "content": audio}],
    )
    gw.flush()

    expected, calls = Decimal(0), 0
    for name, running in ups.items():
        for index, resp in enumerate(running.up.responses):
            assert resp["status"] == 200, resp
            group = _group(running, index)
            expected += library_cost(name, group, resp["body"])
            calls += 1
    (audio,) = [u for r in ups["openai"].up.responses if (u := own_response("openai", r["body"])["usage"])
                ["prompt_tokens_details"]["audio_tokens"]]  # fmt: skip
    assert audio["completion_tokens_details"]["audio_tokens"] > 0  # audio in and out, each at its own rate
    engine = make_engine(database_url)
    t = totals(engine)
    with engine.connect() as conn:
        writes, hour, reasoning = conn.execute(
            text(
                "SELECT SUM(cache_write_tokens), SUM(cache_write_1h_tokens), SUM(reasoning_tokens) FROM ledger_requests"
            )
        ).one()
    engine.dispose()
    assert calls == t.requests == 3 * 2 * 3 + 3 * 3 + 1
    assert t.unpriced == 0 and t.errors == 0 and t.cached_tokens > 0 and reasoning > 0
    assert 0 < hour < writes  # cache writes of both lifetimes were part of the run
    assert t.cost_usd == expected


def _group(running: Any, index: int) -> str:
    """The group of the request behind response `index` (the upstream's log is in the same order)."""
    sent = running.up.log[index]
    name = (sent["body"] or {}).get("model") or sent["path"].split("/models/")[1].split(":")[0]
    return next(g for g, (m, _, _) in GROUPS.items() if m.split("/")[1] == name)
