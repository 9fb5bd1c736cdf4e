"""/openapi.json lists every /v1 route of the gateway's route table with a request and response schema and
`x-permission`, merged into the admin app's document; the document is structurally sound (every $ref
resolves, every schema is valid JSON Schema) and, where openapi-spec-validator is installed, valid OpenAPI."""

from __future__ import annotations

import importlib.util
import re
from typing import Any, ClassVar

import httpx
import jsonschema
import pytest

from ailab.gateway.endpoints.base import Route
from tests.conftest import UPSTREAM_KEY, model


@pytest.fixture
def doc_and_api(openai_upstream, make_gateway) -> tuple[dict[str, Any], Any]:
    gw = make_gateway(
        {
            "model_list": [
                model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1", api_key=UPSTREAM_KEY)
            ]
        }
    )
    resp = httpx.get(f"{gw.url}/openapi.json", timeout=10)
    assert resp.status_code == 200
    return resp.json(), gw.app.state.api


def _table(api: Any) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every /v1 route the gateway serves."""
    exact = {(m, p) for m, p in api.routes if p.startswith("/v1/")}
    patterns = {(m, "/" + "/".join(segs)) for m, segs, _ in api.patterns if segs[0] == "v1"}
    return {(m, re.sub(r"\{(\w+)(?::path)?\}", r"{\1}", p)) for m, p in exact | patterns}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_v1_route_is_listed_with_schemas_and_permission(doc_and_api) -> None:
    doc, api = doc_and_api
    table = _table(api)
    expected = {
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model}"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/{response_id}"),
        ("DELETE", "/v1/responses/{response_id}"),
        ("GET", "/v1/responses/{response_id}/input_items"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/apps/{app}/chat/completions"),
    }
    assert expected <= table
    for method, path in sorted(table):
        op = doc["paths"][path][method.lower()]
        assert op["x-permission"], (method, path)
        assert op["responses"]["200"]["content"]["application/json"]["schema"], (method, path)
        if method == "POST":
            assert op["requestBody"]["content"]["application/json"]["schema"], (method, path)
        names = {p["name"] for p in op.get("parameters", [])}
        assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["x-permission"] == "models.use"
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    request = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages"} <= set(request["required"])
    assert {"stream", "tools", "max_tokens"} <= set(request["properties"])
    assert doc["paths"]["/api/keys"]  # the admin API is still there
    app_op = doc["paths"]["/v1/apps/{app}/chat/completions"]["post"]
    assert app_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("Request")


class Described(Route):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/described"),)
    permission = "knowledge.use"
    openapi: ClassVar[dict[tuple[str, str], dict[str, Any]] | None] = {
        ("POST", "/v1/described"): {"summary": "mine", "responses": {"200": {"description": "OK"}}}
    }


class Undescribed(Route):
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/v1/undescribed/{thing}"),)


def test_an_adapter_describes_itself_or_gets_an_open_description(openai_upstream, make_gateway) -> None:
    gw = make_gateway({"model_list": [model("gpt", "openai/gpt-4o-mini", f"{openai_upstream.url}/v1")]})
    api = gw.app.state.api
    api.add(Described(api))
    api.add(Undescribed(api))
    paths = httpx.get(f"{gw.url}/openapi.json", timeout=10).json()["paths"]
    mine = paths["/v1/described"]["post"]
    assert mine["summary"] == "mine" and mine["x-permission"] == "knowledge.use"
    other = paths["/v1/undescribed/{thing}"]["post"]
    assert other["x-permission"] == "models.use" and other["parameters"][0]["name"] == "thing"
    assert other["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Open"
    }


def test_the_document_is_sound(doc_and_api) -> None:
    doc, _ = doc_and_api
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas, ref
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids))
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        from openapi_spec_validator import validate

        validate(doc)
