"""Answers with citations: retrieve → a prompt with numbered sources → the chat model through the router →
the answer and the sources it cites ([n] markers point into the numbered list)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from ailab.access import Principal
from ailab.knowledge.catalog import Collection
from ailab.knowledge.gateway_client import ModelCallError
from ailab.knowledge.service import Hit, KnowledgeError, KnowledgeService

SYSTEM = (
    "You answer questions using only the numbered sources below. Cite the sources you use with their "
    "numbers in square brackets, like [1] or [2][3], right after the statement they support. If the "
    "sources do not contain the answer, say that you do not know."
)
_CITE = re.compile(r"\[(\d{1,3})\]")
MAX_SOURCE_CHARS = 2000


def source_label(hit: Hit) -> str:
    m = hit.public()
    where = m["source"] or "?"
    if m["page"]:
        where += f", page {m['page']}"
    heading = " › ".join(m["heading"])
    title = m["title"] or ""
    return f"{title} — {heading} ({where})" if heading else f"{title} ({where})"


def build_messages(
    question: str, hits: list[Hit], history: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    blocks = [f"[{n}] {source_label(h)}\n{h.text[:MAX_SOURCE_CHARS]}" for n, h in enumerate(hits, 1)]
    sources = "\n\n".join(blocks) if blocks else "(no sources were found)"
    return [
        {"role": "system", "content": f"{SYSTEM}\n\nSources:\n\n{sources}"},
        *(history or []),
        {"role": "user", "content": question},
    ]


def citations(answer: str, hits: list[Hit]) -> list[dict[str, Any]]:
    cited = {int(n) for n in _CITE.findall(answer)}
    return [{"n": n, "cited": n in cited, **h.public()} for n, h in enumerate(hits, 1)]


def default_chat_model(svc: KnowledgeService, model: str | None) -> str:
    chosen = model or svc.settings.chat_model
    if chosen:
        return chosen
    models = svc.gateway.chat_models()
    if not models:
        raise KnowledgeError("no chat model is configured: name one with `model` or knowledge.chat_model")
    return models[0]


async def ask(
    svc: KnowledgeService,
    principal: Principal,
    colls: list[Collection],
    question: str,
    *,
    model: str | None = None,
    k: int | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    hits = await svc.search(principal, colls, question, k, filters)
    group = default_chat_model(svc, model)
    try:
        result = await svc.gateway.chat(principal, group, {"messages": build_messages(question, hits)})
    except ModelCallError as exc:
        raise KnowledgeError(str(exc), exc.status, exc.code) from None
    answer = ((result.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    return {
        "answer": answer,
        "model": group,
        "citations": citations(answer, hits),
        "usage": result.get("usage"),
    }


async def ask_stream(
    svc: KnowledgeService,
    principal: Principal,
    colls: list[Collection],
    question: str,
    *,
    model: str | None = None,
    k: int | None = None,
    filters: dict[str, Any] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Events: `sources` first, then `delta`s of the answer, then `done` with the citations and usage."""
    hits = await svc.search(principal, colls, question, k, filters)
    group = default_chat_model(svc, model)
    yield {"type": "sources", "model": group, "sources": citations("", hits)}
    parts: list[str] = []
    usage: dict[str, Any] | None = None
    try:
        async for chunk in svc.gateway.chat_stream(
            principal, group, {"messages": build_messages(question, hits)}
        ):
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
                    yield {"type": "delta", "content": text}
            usage = chunk.get("usage") or usage
    except ModelCallError as exc:
        yield {"type": "error", "message": str(exc)}
        return
    answer = "".join(parts)
    yield {"type": "done", "answer": answer, "citations": citations(answer, hits), "usage": usage}


def last_user_text(messages: list[dict[str, Any]]) -> str:
    if not all(isinstance(m, dict) for m in messages):
        raise KnowledgeError("messages: each message must be an object with a role and content")
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    raise KnowledgeError("messages: no user message to answer")


async def chat_completion(
    svc: KnowledgeService, principal: Principal, colls: list[Collection], body: dict[str, Any]
) -> tuple[dict[str, Any] | None, AsyncIterator[dict[str, Any]] | None]:
    """An OpenAI chat completion grounded in `colls`: the sources go in a system message, and the reply
    carries them as `citations`. Returns (reply, None) or, for `stream: true`, (None, chunk iterator)."""
    messages = list(body.get("messages") or [])
    question = last_user_text(messages)
    opts = body.get("knowledge") or {}
    if not isinstance(opts, dict):
        raise KnowledgeError('knowledge: must be an object such as {"k": 5, "filters": {…}}')
    if opts.get("k") is not None and (not isinstance(opts["k"], int) or not 1 <= opts["k"] <= 100):
        raise KnowledgeError("knowledge.k: must be an integer from 1 to 100")
    hits = await svc.search(principal, colls, question, opts.get("k"), opts.get("filters"))
    grounded = build_messages(question, hits, [m for m in messages[:-1] if m.get("role") != "system"])
    group = default_chat_model(svc, body.get("model"))
    payload = {k: v for k, v in body.items() if k not in ("messages", "knowledge", "model", "stream")}
    payload["messages"] = grounded
    if body.get("stream"):
        return None, _stream_with_citations(svc, principal, group, payload, hits)
    try:
        reply = await svc.gateway.chat(principal, group, payload)
    except ModelCallError as exc:
        raise KnowledgeError(str(exc), exc.status, exc.code) from None
    answer = ((reply.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    return {**reply, "citations": citations(answer, hits)}, None


async def _stream_with_citations(
    svc: KnowledgeService, principal: Principal, group: str, payload: dict[str, Any], hits: list[Hit]
) -> AsyncIterator[dict[str, Any]]:
    parts: list[str] = []
    last: dict[str, Any] = {}
    async for chunk in svc.gateway.chat_stream(principal, group, payload):
        for choice in chunk.get("choices") or []:
            parts.append((choice.get("delta") or {}).get("content") or "")
        last = chunk
        if chunk.get("choices"):
            yield chunk
    yield {
        "id": last.get("id", "chatcmpl-knowledge"),
        "object": "chat.completion.chunk",
        "created": last.get("created", 0),
        "model": group,
        "choices": [],
        "usage": last.get("usage"),
        "citations": citations("".join(parts), hits),
    }
