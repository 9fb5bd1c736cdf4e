"""An app's request: the caller's chat body rewritten into the app's (its system prompt rendered with the
caller's variables and the retrieved sources, its parameters and tools, its model group)."""

from __future__ import annotations

from typing import Any

from ailab.apps.models import PLACEHOLDER, SOURCES, AppSpec

# The same instruction the knowledge routes give the model, so [n] markers mean the same everywhere.
CITE_RULES = (
    "Answer using the numbered sources below. Cite the sources you use with their numbers in square "
    "brackets, like [1] or [2][3], right after the statement they support. If the sources do not contain "
    "the answer, say that you do not know."
)
NO_SOURCES = "(no sources were found)"
# Keys of the caller's body the app never passes on: they are the app's to set.
APP_KEYS = ("model", "variables", "knowledge")


class AppRequestError(ValueError):
    """A request an app refuses; `status`/`code`/`param` shape the OpenAI error."""

    def __init__(
        self, message: str, status: int = 400, code: str = "invalid_value", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


def variables_of(spec: AppSpec, given: Any) -> dict[str, str]:
    """The caller's `variables`, checked against the app's declarations, defaults filled in."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise AppRequestError("variables: must be an object of name to text", param="variables")
    unknown = sorted(set(given) - set(spec.variables))
    if unknown:
        declared = ", ".join(sorted(spec.variables)) or "none"
        raise AppRequestError(
            f"variables: app {spec.name!r} has no variable {unknown[0]!r} (declared: {declared})",
            param="variables",
        )
    out: dict[str, str] = {}
    for name, var in spec.variables.items():
        value = given.get(name, var.default)
        if value is None:
            raise AppRequestError(
                f"variables.{name}: required by app {spec.name!r}"
                + (f" ({var.description})" if var.description else ""),
                param=f"variables.{name}",
            )
        if not isinstance(value, str | int | float | bool):
            raise AppRequestError(f"variables.{name}: must be text", param=f"variables.{name}")
        text = str(value)
        if len(text) > var.max_length:
            raise AppRequestError(
                f"variables.{name}: longer than {var.max_length} characters", param=f"variables.{name}"
            )
        out[name] = text
    return out


def render_system(spec: AppSpec, values: dict[str, str], sources: str | None) -> str:
    """The system prompt with `{{name}}` filled in. A RAG app's sources go where `{{sources}}` stands, or
    after the prompt, with the citation rules, when the template does not place them."""
    template = spec.system_prompt
    placed = SOURCES in PLACEHOLDER.findall(template)

    def fill(m: Any) -> str:
        key = m.group(1)
        if key == SOURCES:
            return sources or NO_SOURCES
        return values[key]

    text = PLACEHOLDER.sub(fill, template)  # one pass: a value's own braces are never expanded
    if sources is not None and not placed:
        text = f"{text}\n\n{CITE_RULES}\n\nSources:\n\n{sources}".lstrip()
    return text


def rewrite_body(spec: AppSpec, body: dict[str, Any], system: str) -> dict[str, Any]:
    """The chat body the app sends to its model group."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise AppRequestError("messages: required (a non-empty list)", param="messages")
    out = {k: v for k, v in body.items() if k not in APP_KEYS}
    head = [{"role": "system", "content": system}] if system else []
    out["messages"] = [*head, *messages]
    out.update(spec.parameters.body())  # the app's parameters win: it is the contract
    if spec.tools:
        mine = [t.model_dump(exclude_none=True) for t in spec.tools]
        given = out.get("tools")
        theirs: list[Any] = given if isinstance(given, list) else []
        names = {t["function"]["name"] for t in mine}
        out["tools"] = [*mine, *(t for t in theirs if _tool_name(t) not in names)]
        if spec.tool_choice is not None:
            out["tool_choice"] = spec.tool_choice
    out["model"] = spec.model
    return out


def _tool_name(tool: Any) -> Any:
    return (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None


def last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            return str(c or "")
    return ""
