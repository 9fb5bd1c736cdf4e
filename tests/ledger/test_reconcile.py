"""Ledger totals equal the sum of the usage each upstream reported in its own wire format, over a mixed run
(all four providers, streamed and not, chat and embeddings), and costs equal the price table's.
Runs on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
from genai_prices import Usage as PUsage
from genai_prices import calc_price

from ailab.db import make_engine
from ailab.ledger import totals
from tests.conftest import MASTER, UPSTREAM_KEY, model, start_upstream
from tests.upstreams import anthropic_server, gemini_server, ollama_server, openai_server

OLLAMA_IN, OLLAMA_OUT = 1e-7, 3e-7  # model_info prices for the local model


# -- the usage each upstream reported, parsed from its recorded response bodies ----------------------------


def _json_lines(body: bytes) -> list[dict]:
    out = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if line and line != b"[DONE]" and line[:1] in (b"{", b"["):
            out.append(json.loads(line))
    return out


def openai_usage(body: bytes) -> tuple[int, int, int, int]:
    found = [d["usage"] for d in _json_lines(body) if isinstance(d, dict) and d.get("usage")]
    u = found[-1]
    return (
        u["prompt_tokens"],
        u.get("completion_tokens", 0),
        (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        0,
    )


def anthropic_usage(body: bytes) -> tuple[int, int, int, int]:
    events = _json_lines(body)
    if len(events) == 1:  # a plain Messages response
        u = events[0]["usage"]
        inp, out = u, u["output_tokens"]
    else:  # message_start carries input usage; message_delta's output_tokens is cumulative: take the last
        inp = next(e["message"]["usage"] for e in events if e["type"] == "message_start")
        out = [e["usage"]["output_tokens"] for e in events if e["type"] == "message_delta"][-1]
    cached = inp.get("cache_read_input_tokens") or 0
    written = inp.get("cache_creation_input_tokens") or 0
    return inp["input_tokens"] + written + cached, out, cached, written


def gemini_usage(body: bytes) -> tuple[int, int, int, int]:
    u = [e["usageMetadata"] for e in _json_lines(body) if "usageMetadata" in e][-1]  # cumulative: last wins
    prompt = u["promptTokenCount"] + u.get("toolUsePromptTokenCount", 0)
    return (
        prompt,
        u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0),
        u.get("cachedContentTokenCount", 0),
        0,
    )


def ollama_usage(body: bytes) -> tuple[int, int, int, int]:
    final = [e for e in _json_lines(body) if e.get("done") or "embeddings" in e][-1]
    return final["prompt_eval_count"], final.get("eval_count", 0), 0, 0


PARSERS = {
    "openai": openai_usage,
    "anthropic": anthropic_usage,
    "gemini": gemini_usage,
    "ollama": ollama_usage,
}
PRICE = {
    "openai": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("google", "gemini-2.5-flash"),
}


@pytest.fixture
def upstreams():
    servers = {
        "openai": start_upstream("openai", openai_server.make_app),
        "anthropic": start_upstream("anthropic", anthropic_server.make_app),
        "gemini": start_upstream("gemini", gemini_server.make_app),
        "ollama": start_upstream("ollama", ollama_server.make_app, api_key=None),
    }
    yield servers
    for s in servers.values():
        s.server.stop()


def test_ledger_reconciles_with_upstream_usage_and_prices(upstreams, make_gateway, database_url):
    u = upstreams
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{u['openai'].url}/v1", api_key=UPSTREAM_KEY),
                model("emb", "openai/text-embedding-3-small", f"{u['openai'].url}/v1", api_key=UPSTREAM_KEY),
                model("claude", "anthropic/claude-sonnet-4-5", u["anthropic"].url, api_key=UPSTREAM_KEY),
                model("gemini", "gemini/gemini-2.5-flash", u["gemini"].url, api_key=UPSTREAM_KEY),
                model(
                    "local",
                    "ollama_chat/llama3.2",
                    u["ollama"].url,
                    model_info={"input_cost_per_token": OLLAMA_IN, "output_cost_per_token": OLLAMA_OUT},
                ),
                model(
                    "local-emb",
                    "ollama/nomic-embed-text",
                    u["ollama"].url,
                    model_info={
                        "mode": "embedding",
                        "input_cost_per_token": OLLAMA_IN,
                        "output_cost_per_token": 0,
                    },
                ),
            ],
            "general_settings": {"database_url": database_url},
        }
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    cached_system = {
        "role": "system",
        "content": [{"type": "text", "text": "You are terse. " * 40, "cache_control": {"type": "ephemeral"}}],
    }
    for group in ("gpt", "claude", "gemini", "local"):
        for i in range(3):
            msgs = [cached_system, {"role": "user", "content": f"question number {i} about {group}"}]
            client.chat.completions.create(model=group, messages=msgs)
            list(
                client.chat.completions.create(
                    model=group,
                    messages=[*msgs, {"role": "user", "content": "more"}],
                    stream=True,
                    stream_options={"include_usage": i % 2 == 0},
                )
            )
    client.embeddings.create(model="emb", input=["alpha beta", "gamma"])
    client.embeddings.create(model="local-emb", input="delta epsilon zeta")
    gw.flush()

    expected_tokens = [0, 0, 0]
    written_total = 0
    expected_cost = Decimal(0)
    calls = 0
    for name, running in u.items():
        for resp in running.up.responses:
            assert resp["status"] == 200, resp
            p, c, cached, written = PARSERS[name](resp["body"])
            written_total += written
            calls += 1
            expected_tokens = [expected_tokens[0] + p, expected_tokens[1] + c, expected_tokens[2] + cached]
            if name == "ollama":
                expected_cost += Decimal(str(OLLAMA_IN)) * p + Decimal(str(OLLAMA_OUT)) * c
            else:
                provider, ref = PRICE[name]
                if "embeddings" in resp["path"]:
                    provider, ref = "openai", "text-embedding-3-small"
                expected_cost += calc_price(
                    PUsage(
                        input_tokens=p,
                        output_tokens=c,
                        cache_read_tokens=cached or None,
                        cache_write_tokens=written or None,
                    ),
                    model_ref=ref,
                    provider_id=provider,
                ).total_price
    engine = make_engine(database_url)
    t = totals(engine)
    engine.dispose()
    assert calls == t.requests == 26
    assert [t.prompt_tokens, t.completion_tokens, t.cached_tokens] == expected_tokens
    assert expected_tokens[2] > 0 and written_total > 0  # cache reads and writes were part of the run
    assert t.unpriced == 0 and t.errors == 0
    assert t.cost_usd == expected_cost
