"""POST /v1/rerank: the Cohere/Jina rerank shape that vLLM, TEI, Jina, Cohere and Voyage serve (`query`,
`documents`, `top_n`, `return_documents` → `results[{index, relevance_score, document?}]`), passed through
to OpenAI-compatible upstreams at `{api_base}/rerank`. Providers without a rerank API (Anthropic, Gemini,
Ollama chat) are refused with a 400 saying so. The in-process caller (knowledge) uses the same helpers."""

from __future__ import annotations

from typing import Any, ClassVar

from ailab.gateway.cycle import RequestContext
from ailab.gateway.endpoints.base import Endpoint
from ailab.gateway.endpoints.native import native_json, speaks_openai
from ailab.gateway.errors import GatewayError, bad_param
from ailab.gateway.providers.base import Provider, estimate_tokens
from ailab.gateway.router import Router
from ailab.gateway.types import UpstreamError
from ailab.ledger import ENDPOINT_RERANK

MAX_DOCUMENTS = 10_000  # beyond this a request is a mistake (Cohere caps at 1,000, vLLM at its memory)


def validate_rerank(body: dict[str, Any]) -> dict[str, Any]:
    """The request normalised (documents as strings), or a 400 naming the field."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad_param("model", "required (a string)")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad_param("query", "required (a non-empty string)")
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        raise bad_param("documents", "required (a non-empty list of strings or {'text': ...} objects)")
    if len(docs) > MAX_DOCUMENTS:
        raise bad_param("documents", f"at most {MAX_DOCUMENTS} documents per request")
    texts = [_text(d, i) for i, d in enumerate(docs)]
    top_n = body.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise bad_param("top_n", "must be a positive integer")
    ret = body.get("return_documents", False)
    if not isinstance(ret, bool):
        raise bad_param("return_documents", "must be a boolean")
    out: dict[str, Any] = {"model": body["model"], "query": query, "documents": texts}
    out["return_documents"] = ret
    if top_n is not None:
        out["top_n"] = min(top_n, len(texts))
    return out


def _text(doc: Any, i: int) -> str:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return str(doc["text"])
    raise bad_param(f"documents[{i}]", "must be a string or an object with a string 'text'")


def rerank_estimate(body: dict[str, Any]) -> int:
    """Tokens a rerank costs when the upstream reports none: the query once per document, plus each."""
    q = estimate_tokens(body["query"])
    return sum(q + estimate_tokens(d) for d in body["documents"])


def check_can_rerank(router: Router, group: str) -> None:
    """A 400 before any call when no deployment of the group speaks a rerank API."""
    providers = [router.providers[d.id] for d in router.groups.get(group, ()) if d.id in router.providers]
    if providers and not any(speaks_openai(p) for p in providers):
        raise GatewayError(
            400,
            f"model {group!r} cannot rerank: its provider ({providers[0].label}) has no rerank API; "
            "use a rerank deployment (vLLM, TEI, Jina, Cohere-compatible) with model_info.mode: rerank",
            param="model",
            code="unsupported_model",
        )


async def upstream_rerank(provider: Provider, body: dict[str, Any]) -> dict[str, Any]:
    """POST `{api_base}/rerank` and answer in the lab's shape: results sorted by score, `top_n` kept,
    documents from the request when asked, usage from the upstream or estimated (flagged)."""
    if not speaks_openai(provider):
        raise UpstreamError(
            f"{provider.label} deployments cannot rerank", status=400, code="unsupported_model"
        )
    payload = {k: v for k, v in body.items() if k != "return_documents"}
    data = await native_json(provider, "rerank", payload)
    return rerank_answer(data, body, provider.label)


def rerank_answer(data: dict[str, Any], body: dict[str, Any], label: str) -> dict[str, Any]:
    docs: list[str] = body["documents"]
    results: list[dict[str, Any]] = []
    for r in data.get("results") or ():
        index, score = (r.get("index"), r.get("relevance_score")) if isinstance(r, dict) else (None, None)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(docs):
            raise UpstreamError(
                f"{label} upstream sent a rerank result without a valid index", kind="protocol"
            )
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise UpstreamError(f"{label} upstream sent a rerank result without a score", kind="protocol")
        item: dict[str, Any] = {"index": index, "relevance_score": float(score)}
        if body.get("return_documents"):
            item["document"] = {"text": docs[index]}
        results.append(item)
    results.sort(key=lambda r: -r["relevance_score"])
    if body.get("top_n"):
        results = results[: body["top_n"]]
    tokens = _tokens(data)
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if tokens is None:
        n = rerank_estimate(body)
        usage = {"prompt_tokens": n, "total_tokens": n, "estimated": True}
    return {"id": str(data.get("id") or ""), "model": body["model"], "results": results, "usage": usage}


def _tokens(data: dict[str, Any]) -> int | None:
    """The upstream's own count: vLLM/Jina `usage.total_tokens` (or `prompt_tokens`), Cohere
    `meta.billed_units.input_tokens`, Voyage `usage.total_tokens`."""
    usage = data.get("usage")
    if isinstance(usage, dict):
        for name in ("total_tokens", "prompt_tokens"):
            if isinstance(usage.get(name), int) and not isinstance(usage[name], bool):
                return int(usage[name])
    billed = (data.get("meta") or {}).get("billed_units") if isinstance(data.get("meta"), dict) else None
    if isinstance(billed, dict) and isinstance(billed.get("input_tokens"), int):
        return int(billed["input_tokens"])
    return None


class Rerank(Endpoint):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/rerank"),)
    endpoint_id = ENDPOINT_RERANK

    def parse(self, ctx: RequestContext, body: dict[str, Any]) -> str:
        ctx.body = validate_rerank(body)
        model: str = body["model"]
        return model

    def estimate(self, ctx: RequestContext) -> tuple[int, int]:
        check_can_rerank(self.api.router, ctx.group)  # after resolve: the group is known and in scope
        return rerank_estimate(ctx.body), 0

    async def call(self, provider: Provider, ctx: RequestContext) -> dict[str, Any]:
        return await upstream_rerank(provider, ctx.body)

    def answer(self, result: dict[str, Any], ctx: RequestContext) -> Any:
        result["id"] = result["id"] or f"rerank-{ctx.request_id}"
        return result
