"""The /v1 routes as OpenAPI: operation objects collected from the gateway's route table, merged into the
admin app's /openapi.json when it is built (the hot path stays raw ASGI; nothing here runs per request).

An adapter describes itself with `Route.openapi` ({(method, path): operation}); the built-ins' operations are
here (`OPERATIONS`), hand-written and small: the main request fields and the answers' main fields. A route
with neither still appears, with an open request/response schema. Every operation gets `x-permission`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ailab.gateway.api import GatewayAPI

REF = "#/components/schemas/"
_PARAM = re.compile(r"\{(\w+)(?::path)?\}")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF + name}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props, "additionalProperties": True}


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
NUM: dict[str, Any] = {"type": "number"}
OPEN: dict[str, Any] = {"type": "object", "additionalProperties": True}
TEXT_OR_LIST: dict[str, Any] = {"oneOf": [STR, {"type": "array", "items": STR}]}
TOOLS: dict[str, Any] = {"type": "array", "items": OPEN}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj(
        ["error"],
        error=_obj(
            ["message", "type"],
            message=STR,
            type=STR,
            param={"type": ["string", "null"]},
            code={"type": ["string", "null"]},
        ),
    ),
    "Usage": _obj(
        ["prompt_tokens", "total_tokens"], prompt_tokens=INT, completion_tokens=INT, total_tokens=INT
    ),
    "ChatMessage": _obj(
        ["role"],
        role={"enum": ["system", "developer", "user", "assistant", "tool"]},
        content={"oneOf": [STR, {"type": "array", "items": OPEN}, {"type": "null"}]},
        name=STR,
        tool_calls={"type": "array", "items": OPEN},
        tool_call_id=STR,
    ),
    "ChatCompletionRequest": _obj(
        ["model", "messages"],
        model=STR,
        messages={"type": "array", "items": _ref("ChatMessage"), "minItems": 1},
        stream=BOOL,
        stream_options=OPEN,
        max_tokens=INT,
        max_completion_tokens=INT,
        temperature=NUM,
        top_p=NUM,
        n=INT,
        stop=TEXT_OR_LIST,
        tools=TOOLS,
        tool_choice={"oneOf": [STR, OPEN]},
        response_format=OPEN,
        fallbacks={"type": "array", "items": STR, "description": "model groups to try if this one fails"},
    ),
    "ChatCompletion": _obj(
        ["id", "object", "created", "model", "choices"],
        id=STR,
        object={"const": "chat.completion"},
        created=INT,
        model=STR,
        choices={
            "type": "array",
            "items": _obj(["index", "message"], index=INT, message=_ref("ChatMessage"), finish_reason=STR),
        },
        usage=_ref("Usage"),
    ),
    "EmbeddingRequest": _obj(
        ["model", "input"],
        model=STR,
        input={"oneOf": [STR, {"type": "array"}]},
        encoding_format={"enum": ["float", "base64"]},
        dimensions=INT,
    ),
    "EmbeddingList": _obj(
        ["object", "data", "model"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": _obj(
                ["index", "embedding"], object=STR, index=INT, embedding={"type": ["array", "string"]}
            ),
        },
        model=STR,
        usage=_ref("Usage"),
    ),
    "CompletionRequest": _obj(
        ["model", "prompt"],
        model=STR,
        prompt={"oneOf": [STR, {"type": "array"}]},
        stream=BOOL,
        max_tokens=INT,
        temperature=NUM,
        stop=TEXT_OR_LIST,
        echo=BOOL,
        suffix=STR,
    ),
    "Completion": _obj(
        ["id", "object", "created", "model", "choices"],
        id=STR,
        object={"const": "text_completion"},
        created=INT,
        model=STR,
        choices={"type": "array", "items": _obj(["index", "text"], index=INT, text=STR, finish_reason=STR)},
        usage=_ref("Usage"),
    ),
    "Model": _obj(["id", "object"], id=STR, object={"const": "model"}, created=INT, owned_by=STR),
    "ModelList": _obj(
        ["object", "data"], object={"const": "list"}, data={"type": "array", "items": _ref("Model")}
    ),
    "ResponseRequest": _obj(
        ["model"],
        model=STR,
        input={"oneOf": [STR, {"type": "array", "items": OPEN}]},
        instructions=STR,
        stream=BOOL,
        tools=TOOLS,
        tool_choice={"oneOf": [STR, OPEN]},
        text=OPEN,
        max_output_tokens=INT,
        store=BOOL,
        previous_response_id=STR,
        temperature=NUM,
    ),
    "Response": _obj(
        ["id", "object", "status", "model", "output"],
        id=STR,
        object={"const": "response"},
        created_at=NUM,
        status=STR,
        model=STR,
        output={"type": "array", "items": OPEN},
        usage=_obj([], input_tokens=INT, output_tokens=INT, total_tokens=INT),
    ),
    "ResponseDeleted": _obj(
        ["id", "object", "deleted"], id=STR, object={"const": "response.deleted"}, deleted=BOOL
    ),
    "ResponseItemList": _obj(
        ["object", "data"],
        object={"const": "list"},
        data={"type": "array", "items": OPEN},
        first_id=STR,
        last_id=STR,
        has_more=BOOL,
    ),
    "MessagesRequest": _obj(
        ["model", "messages", "max_tokens"],
        model=STR,
        messages={"type": "array", "items": _obj(["role", "content"], role={"enum": ["user", "assistant"]})},
        max_tokens=INT,
        system={"oneOf": [STR, {"type": "array", "items": OPEN}]},
        stream=BOOL,
        tools=TOOLS,
        tool_choice=OPEN,
        stop_sequences={"type": "array", "items": STR},
        temperature=NUM,
    ),
    "Message": _obj(
        ["id", "type", "role", "content", "model"],
        id=STR,
        type={"const": "message"},
        role={"const": "assistant"},
        content={"type": "array", "items": OPEN},
        model=STR,
        stop_reason={"type": ["string", "null"]},
        usage=_obj(["input_tokens", "output_tokens"], input_tokens=INT, output_tokens=INT),
    ),
    "CountTokensRequest": _obj(
        ["model", "messages"], model=STR, messages={"type": "array"}, system={}, tools=TOOLS
    ),
    "TokenCount": _obj(["input_tokens"], input_tokens=INT),
    "RerankRequest": _obj(
        ["model", "query", "documents"],
        model=STR,
        query=STR,
        documents={"type": "array", "items": {"oneOf": [STR, _obj(["text"], text=STR)]}},
        top_n=INT,
        return_documents=BOOL,
    ),
    "RerankResult": _obj(
        ["results"],
        id=STR,
        model=STR,
        results={
            "type": "array",
            "items": _obj(["index", "relevance_score"], index=INT, relevance_score=NUM, document=OPEN),
        },
        usage=_obj([], prompt_tokens=INT, total_tokens=INT),
    ),
    "AnthropicError": _obj(
        ["type", "error"], type={"const": "error"}, error=_obj(["type", "message"], type=STR, message=STR)
    ),
}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _answer(schema: str, stream: bool = False, error: str = "Error") -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    if stream:  # with "stream": true the same route answers server-sent events
        ok["text/event-stream"] = {"schema": STR}
    err = {"description": "error", "content": {"application/json": {"schema": _ref(error)}}}
    return {"200": {"description": "OK", "content": ok}, "default": err}


def _op(summary: str, tag: str, answer: str, body: str | None = None, **kw: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": _answer(answer, **kw)}
    if body is not None:
        op["requestBody"] = _body(body)
    return op


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): _op(
        "Create a chat completion", "chat", "ChatCompletion", "ChatCompletionRequest", stream=True
    ),
    ("POST", "/v1/apps/{app}/chat/completions"): _op(
        "Chat with an app (its model field is ignored)",
        "apps",
        "ChatCompletion",
        "ChatCompletionRequest",
        stream=True,
    ),
    ("POST", "/v1/embeddings"): _op("Create embeddings", "embeddings", "EmbeddingList", "EmbeddingRequest"),
    ("POST", "/v1/completions"): _op(
        "Create a (legacy) text completion", "completions", "Completion", "CompletionRequest", stream=True
    ),
    ("GET", "/v1/models"): _op("List the models the key may use", "models", "ModelList"),
    ("GET", "/v1/models/{model:path}"): _op("Retrieve a model", "models", "Model"),
    ("POST", "/v1/responses"): _op(
        "Create a response", "responses", "Response", "ResponseRequest", stream=True
    ),
    ("GET", "/v1/responses/{response_id}"): _op("Retrieve a stored response", "responses", "Response"),
    ("DELETE", "/v1/responses/{response_id}"): _op(
        "Delete a stored response", "responses", "ResponseDeleted"
    ),
    ("GET", "/v1/responses/{response_id}/input_items"): _op(
        "List a stored response's input items", "responses", "ResponseItemList"
    ),
    ("POST", "/v1/messages"): _op(
        "Create a message (Anthropic Messages API)",
        "messages",
        "Message",
        "MessagesRequest",
        stream=True,
        error="AnthropicError",
    ),
    ("POST", "/v1/rerank"): _op("Rerank documents for a query", "rerank", "RerankResult", "RerankRequest"),
    ("POST", "/v1/messages/count_tokens"): _op(
        "Count a message's input tokens",
        "messages",
        "TokenCount",
        "CountTokensRequest",
        error="AnthropicError",
    ),
}

SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an ailab API key or session token"},
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}


def _generic(method: str, path: str) -> dict[str, Any]:
    """A route that describes nothing of itself: listed with open schemas rather than left out."""
    op: dict[str, Any] = {"summary": f"{method} {path}", "responses": _answer("Open")}
    if method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = _body("Open")
    return op


def _parameters(path: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": STR} for n in _PARAM.findall(path)]


def operations(api: GatewayAPI) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) → operation of every route in the table; a later adapter at the same route wins, as
    in the table itself (apps' chat completions replace the built-in)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for route in api.adapters:
        own = type(route).openapi or {}
        for method, path in route.routes:
            op = dict(own.get((method, path)) or OPERATIONS.get((method, path)) or _generic(method, path))
            op["x-permission"] = route.permission
            op["operationId"] = f"v1_{method.lower()}_" + re.sub(r"\W+", "_", _PARAM.sub(r"\1", path)).strip(
                "_"
            )
            op["security"] = [{"bearer": []}, {"x-api-key": []}]
            if "{" in path:
                op["parameters"] = _parameters(path)
            out[(method, path)] = op
    return out


def merge(doc: dict[str, Any], api: GatewayAPI) -> dict[str, Any]:
    """Add the /v1 routes (their paths written `{name}`, as OpenAPI wants) and schemas to `doc`."""
    paths = doc.setdefault("paths", {})
    for (method, path), op in operations(api).items():
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[method.lower()] = op
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(SCHEMAS)
    schemas["Open"] = OPEN
    components.setdefault("securitySchemes", {}).update(SECURITY)
    return doc
