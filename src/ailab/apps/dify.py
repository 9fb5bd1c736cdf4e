"""`ailab apps export NAME --to dify`: an app as a Dify DSL file, the format of Dify's "Export DSL" at the
DSL version of the Dify image the stack catalog pins (langgenius/dify-api 1.1.3: `CURRENT_DSL_VERSION =
"0.1.5"` in api/services/app_dsl_service.py).

The app becomes a Dify `chat` app whose model is the lab's model group through the OpenAI-API-compatible
provider plugin (`langgenius/openai_api_compatible`, a dependency of the file), and whose knowledge is
the lab's own collections, reached as Dify "external knowledge" datasets that call the lab's retrieval
endpoint (`/api/apps/dify/retrieval`, see ailab.server.admin.apps). Dify stores no copy: the chunks stay
in the lab's vector store (the stack's Qdrant).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ailab.apps.models import PLACEHOLDER, SOURCES, AppSpec

DIFY_TAG = "1.1.3"  # must match ailab.stack.catalog.dify.TAG (a test checks)
DSL_VERSION = "0.1.5"  # Dify 1.1.3's CURRENT_DSL_VERSION
PLUGIN = "langgenius/openai_api_compatible"
PROVIDER = f"{PLUGIN}/openai_api_compatible"  # Dify >= 1.0 names a plugin's provider <plugin>/<provider>
# The marketplace package of the plugin the export depends on; overridable (`--plugin`), since a
# marketplace identifier carries the package's checksum and Dify installs exactly that one.
PLUGIN_IDENTIFIER = (
    "langgenius/openai_api_compatible:0.0.53@a0dfb462961a03c6a6415d4185043185b01017c64da93cf82a9e5ecaf59f8ed0"
)
_PARAMS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed", "stop")


def export_app(
    spec: AppSpec, datasets: dict[str, str] | None = None, plugin: str = PLUGIN_IDENTIFIER
) -> tuple[dict[str, Any], list[str]]:
    """(the DSL document, notes on what Dify cannot take over). `datasets`: collection -> Dify dataset
    id (made by `ailab install dify`); collections without one are left out, with a note."""
    notes: list[str] = []
    doc: dict[str, Any] = {
        "app": {
            "description": spec.description,
            "icon": "🤖",
            "icon_background": "#FFEAD5",
            "icon_type": "emoji",
            "mode": "chat",
            "name": spec.name,
            "use_icon_as_answer_icon": False,
        },
        "dependencies": [
            {
                "current_identifier": None,
                "type": "marketplace",
                "value": {"marketplace_plugin_unique_identifier": plugin},
            }
        ],
        "kind": "app",
        "model_config": _model_config(spec, datasets or {}, notes),
        "version": DSL_VERSION,
    }
    if spec.tools:
        names = ", ".join(t.function.name for t in spec.tools)
        notes.append(f"function tools ({names}) are the caller's to run: a Dify chat app has none")
    return doc, notes


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=110)


def _model_config(spec: AppSpec, datasets: dict[str, str], notes: list[str]) -> dict[str, Any]:
    off = {"enabled": False}
    return {
        "agent_mode": {"enabled": False, "max_iteration": 5, "strategy": "function_call", "tools": []},
        "annotation_reply": off,
        "chat_prompt_config": {},
        "completion_prompt_config": {},
        "dataset_configs": _datasets(spec, datasets, notes),
        "dataset_query_variable": "",
        "external_data_tools": [],
        "file_upload": {
            "image": {
                "detail": "high",
                "enabled": False,
                "number_limits": 3,
                "transfer_methods": ["remote_url"],
            }
        },
        "model": {
            "completion_params": _completion_params(spec),
            "mode": "chat",
            "name": spec.model,
            "provider": PROVIDER,
        },
        "more_like_this": off,
        "opening_statement": spec.opening_statement,
        "pre_prompt": _pre_prompt(spec),
        "prompt_type": "simple",
        "retriever_resource": {"enabled": spec.knowledge is not None},
        "sensitive_word_avoidance": {"configs": [], "enabled": False, "type": ""},
        "speech_to_text": off,
        "suggested_questions": [],
        "suggested_questions_after_answer": off,
        "text_to_speech": {"enabled": False, "language": "", "voice": ""},
        "user_input_form": [_input(name, var) for name, var in spec.variables.items()],
    }


def _pre_prompt(spec: AppSpec) -> str:
    """Dify's `{{name}}` variables are the app's own syntax; the sources are Dify's to place (its simple
    prompt puts the retrieved context before the instructions), so `{{sources}}` goes."""

    def keep(m: Any) -> str:
        return "" if m.group(1) == SOURCES else "{{" + m.group(1) + "}}"

    return PLACEHOLDER.sub(keep, spec.system_prompt).strip()


def _input(name: str, var: Any) -> dict[str, Any]:
    return {
        "text-input": {
            "default": var.default or "",
            "label": var.description or name,
            "max_length": min(var.max_length, 256),
            "required": var.default is None,
            "variable": name,
        }
    }


def _completion_params(spec: AppSpec) -> dict[str, Any]:
    p = spec.parameters.body()
    out = {k: p[k] for k in _PARAMS if k in p}
    fmt = p.get("response_format")
    if fmt is not None and fmt["type"] != "text":
        # Dify's model parameters: the format's name, and a JSON schema as text.
        out["response_format"] = fmt["type"]
        if fmt["type"] == "json_schema":
            out["json_schema"] = json.dumps(fmt["json_schema"], ensure_ascii=False)
    return out


def _datasets(spec: AppSpec, ids: dict[str, str], notes: list[str]) -> dict[str, Any]:
    k = spec.knowledge
    chosen = []
    for coll in k.collections if k else []:
        if coll in ids:
            chosen.append({"dataset": {"enabled": True, "id": ids[coll]}})
        else:
            notes.append(
                f"collection {coll!r} has no Dify dataset yet: `ailab install dify` creates one "
                f"(or pass --dataset {coll}=<dataset id>)"
            )
    return {
        "datasets": {"datasets": chosen},
        "reranking_enable": bool(k and k.rerank),
        "retrieval_model": "multiple",
        "score_threshold": None,
        "score_threshold_enabled": False,
        "top_k": k.k if k else 4,
    }
