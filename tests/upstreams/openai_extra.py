"""The OpenAI-compatible upstream's legacy completions (`/v1/completions`, with SSE) and the Cohere/Jina
rerank shape vLLM and TEI serve (`/v1/rerank`), deterministic like the rest of the fake.

Completions: the text is `echo: <prompt>` cut to `max_tokens` words (default 16); prompt tokens are the
prompt's words, completion tokens the text's words. Rerank: a document's score is the share of the query's
words it contains; usage is the words of query and documents."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstreams.harness import Upstream, apply_fault

Refusal = Callable[[Request], Response | None]


def completion_text(prompt: str, max_tokens: int | None) -> tuple[str, str]:
    words = f"echo: {prompt}".split()
    limit = 16 if max_tokens is None else max_tokens
    return " ".join(words[:limit]), "length" if len(words) > limit else "stop"


def rerank_scores(query: str, documents: list[str]) -> list[float]:
    q = {w.lower() for w in query.split()}
    return [len(q & {w.lower() for w in d.split()}) / max(1, len(q)) for d in documents]


def routes(up: Upstream, unauthorized: Refusal, error: Callable[..., dict[str, Any]]) -> list[Route]:
    async def completions(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        if (resp := await apply_fault(up.next_fault(), error)) is not None:
            return resp
        body = entry["body"]
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        answers = [completion_text(str(p), body.get("max_tokens")) for p in prompts]
        prompt_tokens = sum(len(str(p).split()) for p in prompts)
        completion_tokens = sum(len(t.split()) for t, _ in answers)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
        }
        if body.get("stream"):
            return StreamingResponse(_stream(base, answers[0], usage, body), media_type="text/event-stream")
        choices = [
            {"text": t, "index": i, "logprobs": None, "finish_reason": f} for i, (t, f) in enumerate(answers)
        ]
        return JSONResponse({**base, "choices": choices, "usage": usage})

    async def rerank(request: Request) -> Response:
        entry = await up.record(request)
        if (resp := unauthorized(request)) is not None:
            return resp
        if (resp := await apply_fault(up.next_fault(), error)) is not None:
            return resp
        body = entry["body"]
        docs = [d if isinstance(d, str) else d["text"] for d in body["documents"]]
        scores = rerank_scores(body["query"], docs)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])[: body.get("top_n") or len(docs)]
        results: list[dict[str, Any]] = []
        for i in order:
            r: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if body.get("return_documents"):
                r["document"] = {"text": docs[i]}
            results.append(r)
        tokens = len(body["query"].split()) + sum(len(d.split()) for d in docs)
        return JSONResponse(
            {
                "id": "rerank-fake",
                "model": body["model"],
                "results": results,
                "usage": {"total_tokens": tokens},
            }
        )

    return [
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/rerank", rerank, methods=["POST"]),
    ]


async def _stream(
    base: dict[str, Any], answer: tuple[str, str], usage: dict[str, Any], body: dict[str, Any]
) -> AsyncIterator[bytes]:
    text, finish = answer
    words = text.split(" ")
    for i, w in enumerate(words):
        last = i == len(words) - 1
        choice = {
            "text": (" " if i else "") + w,
            "index": 0,
            "logprobs": None,
            "finish_reason": finish if last else None,
        }
        yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
    if (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"
