"""A fake Gemini API (Generative Language API v1beta): generateContent, streamGenerateContent, batchEmbedContents.

Wire format as documented by Google: `x-goog-api-key` auth (a wrong key is a 400 INVALID_ARGUMENT
API_KEY_INVALID, a missing one a 403 PERMISSION_DENIED), `{"error": {code, message, status, details}}` errors,
`?alt=sse` streams of `data: {GenerateContentResponse}` events with cumulative usageMetadata and a usage-only last
event, function calls sent whole with a thoughtSignature, no ids.

Deterministic: the reply is `echo: <last user text>`; with function declarations and a user turn last (mode not
NONE) it calls the first allowed function with {"city": "Paris"}; after a functionResponse it says
`tool said: <output>`. Tokens: prompt = words of every part + 3 per content (system included), half of it
"cached"; candidates = words of the reply (+5 per call); thoughts = 7. Magic words: BLOCKPROMPT (promptFeedback
block, no candidates), BLOCKME (finishReason SAFETY), STREAMERROR (streams: an error event after the first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.upstreams.harness import StreamCut, Upstream, apply_fault

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
GENERATION_CONFIG_FIELDS = frozenset({
    "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed",
    "presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema",
    "thinkingConfig", "responseLogprobs", "logprobs", "responseModalities",
})  # fmt: skip
SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
SIGNATURE = "c2lnbmF0dXJlLWZvci1jYWxs"
THOUGHT_TOKENS = 7
RESPONSE_ID = "fakeResp123"


def gemini_error(status: int, message: str = "upstream failure", retry_delay: str | None = None,
                 reason: str | None = None) -> dict[str, Any]:  # fmt: skip
    err: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"}})  # fmt: skip
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    if details:
        err["details"] = details
    return {"error": err}


def part_text(part: dict[str, Any]) -> str:
    if "text" in part:
        return str(part["text"])
    if "functionResponse" in part:
        return json.dumps(part["functionResponse"].get("response"))
    if "functionCall" in part:
        return json.dumps(part["functionCall"])
    return ""


def content_text(content: dict[str, Any]) -> str:
    return " ".join(t for p in content.get("parts") or [] if (t := part_text(p)))


def validate(body: Any) -> str | None:
    """The checks Google's front end makes that an adapter bug would trip; returns the error message."""
    if not isinstance(body, dict) or not body.get("contents"):
        return "* GenerateContentRequest.contents: contents is not specified"
    for c in body["contents"]:
        if c.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. Got {c.get('role')!r}"
        if not c.get("parts"):
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
    for key in body.get("generationConfig") or {}:
        if key not in GENERATION_CONFIG_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field."
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or []:
            if "parameters" in decl and not schema_ok(decl["parameters"]):
                return "Invalid JSON payload received. Unknown name in function_declarations[0].parameters"
    return None


def schema_ok(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            return False
        if key == "properties" and not all(schema_ok(v) for v in value.values()):
            return False
        if key == "items" and not schema_ok(value):
            return False
    return True


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the model answers: text, a function call, or a block."""
    last = body["contents"][-1]
    responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    config = body.get("generationConfig") or {}
    text = content_text(last)
    if "BLOCKPROMPT" in text:
        return {"blocked_prompt": True}
    if "BLOCKME" in text:
        return {"finish": "SAFETY", "words": []}
    if "STREAMERROR" in text:
        return {"finish": "STOP", "words": ["partial", "answer"], "stream_error": True}
    if responses:
        reply = "tool said: " + " ".join(str(r["response"].get("output", r["response"])) for r in responses)
    elif decls and last["role"] == "user" and fcc.get("mode", "AUTO") != "NONE":
        name = (fcc.get("allowedFunctionNames") or [decls[0]["name"]])[0]
        return {"finish": "STOP", "words": [], "call": {"name": name, "args": {"city": "Paris"}}}
    elif config.get("responseMimeType") == "application/json":
        reply = json.dumps({"echo": text})
    else:
        reply = f"echo: {text}"
    words = reply.split(" ")
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and len(words) > limit:
        return {"finish": "MAX_TOKENS", "words": words[:limit]}
    return {"finish": "STOP", "words": words}


def usage_for(
    body: dict[str, Any], plan: dict[str, Any], n: int, emitted: int | None = None
) -> dict[str, Any]:
    contents = list(body["contents"])
    if body.get("systemInstruction"):
        contents.append(body["systemInstruction"])
    prompt = sum(len(content_text(c).split()) + 3 for c in contents)
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    cached = prompt // 2
    if cached:
        usage["cachedContentTokenCount"] = cached
    if plan.get("blocked_prompt"):
        return {**usage, "totalTokenCount": prompt}
    words = len(plan["words"]) if emitted is None else emitted
    candidates = n * (words + (5 if plan.get("call") else 0))
    usage["candidatesTokenCount"] = candidates
    usage["thoughtsTokenCount"] = THOUGHT_TOKENS
    usage["totalTokenCount"] = prompt + candidates + THOUGHT_TOKENS
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def candidate(
    plan: dict[str, Any], index: int, parts: list[dict[str, Any]], finish: str | None
) -> dict[str, Any]:
    cand: dict[str, Any] = {"index": index}
    if parts:
        cand["content"] = {"parts": parts, "role": "model"}
    if finish:
        cand["finishReason"] = finish
    if finish == "SAFETY":
        cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                  "blocked": True}]  # fmt: skip
    return cand


def full_parts(body: dict[str, Any], plan: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts"):
        parts.append({"text": "Thinking it over.", "thought": True})
    if plan.get("call"):
        parts.append({"functionCall": plan["call"], "thoughtSignature": SIGNATURE})
    elif plan["words"]:
        parts.append({"text": " ".join(plan["words"])})
    return parts


def make_app(up: Upstream) -> Starlette:
    def unauthorized(request: Request) -> Response | None:
        if not up.api_key:
            return None
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            msg = ("Method doesn't allow unregistered callers (callers without established identity). "
                   "Please use API Key or other form of API consumer identity to call this API.")  # fmt: skip
            return JSONResponse(gemini_error(403, msg), status_code=403)
        if key != up.api_key:
            body = gemini_error(
                400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
            )
            return JSONResponse(body, status_code=400)
        return None

    async def models(request: Request) -> Response:
        entry = await up.record(request)
        model, _, action = request.path_params["target"].partition(":")
        if (resp := unauthorized(request)) is not None:
            return resp
        fault = up.next_fault()
        if (resp := await apply_fault(fault, gemini_error)) is not None:
            return resp
        body = entry["body"]
        if action == "batchEmbedContents":
            return embed(model, body)
        if action not in ("generateContent", "streamGenerateContent"):
            return JSONResponse(gemini_error(404, f"Method {action} not found"), status_code=404)
        if (problem := validate(body)) is not None:
            return JSONResponse(gemini_error(400, problem), status_code=400)
        plan = plan_reply(body)
        if action == "generateContent":
            return JSONResponse(complete(model, body, plan))
        events = stream_events(model, body, plan)
        if request.query_params.get("alt") != "sse":  # without alt=sse Google streams one JSON array
            return JSONResponse(events)
        cut = fault.cut_after if fault else None
        return StreamingResponse(sse(events, cut), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1beta/models/{target}", models, methods=["POST"])])


def complete(model: str, body: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    out: dict[str, Any] = {"usageMetadata": usage_for(body, plan, n), "modelVersion": model,
                           "responseId": RESPONSE_ID}  # fmt: skip
    if plan.get("blocked_prompt"):
        out["promptFeedback"] = {"blockReason": "SAFETY"}
        return out
    out["candidates"] = [candidate(plan, i, full_parts(body, plan), plan["finish"]) for i in range(n)]
    return out


def stream_events(model: str, body: dict[str, Any], plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Text word by word, a call whole; cumulative usage on every event, then a usage-only last event."""
    n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    meta = {"modelVersion": model, "responseId": RESPONSE_ID}
    if plan.get("blocked_prompt"):
        return [
            {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage_for(body, plan, n), **meta}
        ]
    steps: list[list[dict[str, Any]]] = []
    parts = full_parts(body, plan)
    if parts and parts[0].get("thought"):
        steps.append([parts.pop(0)])
    if plan.get("call") or not plan["words"]:
        steps.append(parts)
    else:
        steps.extend([{"text": (" " if i else "") + w}] for i, w in enumerate(plan["words"]))
    events: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        finish = plan["finish"] if i == len(steps) - 1 else None
        emitted = sum(1 for s in steps[: i + 1] for p in s if "text" in p and not p.get("thought"))
        usage = usage_for(body, plan, n, emitted)
        usage.pop("thoughtsTokenCount")  # Google fills the thinking count only at the end
        usage["totalTokenCount"] -= THOUGHT_TOKENS
        events.append({"candidates": [candidate(plan, c, step, finish) for c in range(n)],
                       "usageMetadata": usage, **meta})  # fmt: skip
    events.append({"usageMetadata": usage_for(body, plan, n), **meta})
    if plan.get("stream_error"):  # Google reports failures after the first byte as an error event
        events[1:] = [gemini_error(503, "The model is overloaded. Please try again later.")]
    return events


async def sse(events: list[dict[str, Any]], cut: int | None) -> AsyncIterator[bytes]:
    for sent, event in enumerate(events):
        if cut is not None and sent >= cut:
            raise StreamCut()
        yield f"data: {json.dumps(event)}\r\n\r\n".encode()


def embed(model: str, body: Any) -> Response:
    requests = (body or {}).get("requests")
    if not isinstance(requests, list) or not requests:
        return JSONResponse(
            gemini_error(400, "* BatchEmbedContentsRequest.requests: is required"), status_code=400
        )
    out = []
    for req in requests:
        if req.get("model") != f"models/{model}":
            msg = f"Model {req.get('model')!r} in request does not match the model in the path (models/{model})."
            return JSONResponse(gemini_error(400, msg), status_code=400)
        text = content_text(req.get("content") or {})
        out.append({"values": fake_vector(text, int(req.get("outputDimensionality") or 8))})
    return JSONResponse({"embeddings": out})


def fake_vector(text: str, dim: int) -> list[float]:
    digest = b""
    while len(digest) < dim:
        digest += hashlib.sha256(text.encode() + len(digest).to_bytes(4, "big")).digest()
    return [round((b - 128) / 128, 4) for b in digest[:dim]]
