"""What an app is: a model group, a system prompt template, parameters, knowledge, tools and an owner
project. Pydantic models with `extra="forbid"`, so a misspelt key is an error that names the field."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# `{{ name }}` placeholders; `sources` is filled with the retrieved chunks of a RAG app.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SOURCES = "sources"
ALIAS_PREFIX = "app:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variable(_Strict):
    """A template variable; without a default the caller must send it (`variables` in the request)."""

    description: str = ""
    default: str | None = None
    max_length: int = Field(default=4000, ge=1, le=100_000)


class Parameters(_Strict):
    """Sampling parameters the app fixes: they win over the caller's (the app is the contract)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: list[str] | None = Field(default=None, max_length=4)
    response_format: dict[str, Any] | None = None

    @field_validator("response_format")
    @classmethod
    def _format(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        kind = v.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise ValueError("type: choose text, json_object or json_schema")
        if kind == "json_schema":
            spec = v.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ValueError("json_schema: needs an object with a name and a schema")
            if not isinstance(spec.get("schema"), dict):
                raise ValueError("json_schema.schema: must be a JSON Schema object")
        return v

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Knowledge(_Strict):
    """Collections the app retrieves from, and how."""

    collections: list[str] = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=50)
    filters: dict[str, Any] | None = None
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    # Reorder with the lab's reranker (knowledge.rerank_model) when one is configured.
    rerank: bool = False


class Function(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class Tool(_Strict):
    """An OpenAI function tool the model may call; the caller runs it and sends the result back."""

    type: Literal["function"] = "function"
    function: Function


class AppSpec(_Strict):
    name: str
    description: str = ""
    model: str = Field(min_length=1, description="the model group the app calls")
    system_prompt: str = ""
    variables: dict[str, Variable] = Field(default_factory=dict)
    parameters: Parameters = Field(default_factory=Parameters)
    knowledge: Knowledge | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] | None = None
    project: str | None = Field(default=None, description="owner project (name or id); none: lab-wide")
    opening_statement: str = ""  # shown by UIs that have one (Dify)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(
                "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit "
                "(at most 63 characters)"
            )
        return v

    @field_validator("variables")
    @classmethod
    def _variables(cls, v: dict[str, Variable]) -> dict[str, Variable]:
        for key in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"{key!r}: a variable name is letters, digits and '_'")
            if key == SOURCES:
                raise ValueError("'sources' is reserved: it holds the retrieved chunks of a RAG app")
        return v

    @model_validator(mode="after")
    def _placeholders(self) -> AppSpec:
        used = set(PLACEHOLDER.findall(self.system_prompt))
        unknown = sorted(used - set(self.variables) - {SOURCES})
        if unknown:
            raise ValueError(
                f"system_prompt uses {', '.join('{{' + u + '}}' for u in unknown)}, "
                "which are not declared under variables"
            )
        if SOURCES in used and self.knowledge is None:
            raise ValueError("system_prompt uses {{sources}} but the app has no knowledge collections")
        names = [t.function.name for t in self.tools]
        if len(names) != len(set(names)):
            raise ValueError("tools: two tools have the same function name")
        return self

    @property
    def alias(self) -> str:
        return f"{ALIAS_PREFIX}{self.name}"
