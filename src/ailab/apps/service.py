"""Apps at run time: which apps a caller may use, and an app call prepared from a caller's chat body
(access checked, variables rendered, sources retrieved through the knowledge service)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ailab.access import Principal, decide, holds
from ailab.apps.loader import AppSet
from ailab.apps.models import ALIAS_PREFIX, AppSpec
from ailab.apps.prompt import AppRequestError, last_user_text, render_system, rewrite_body, variables_of

if TYPE_CHECKING:
    from ailab.knowledge import Hit, KnowledgeService

MAX_SOURCE_CHARS = 2000


@dataclass
class AppCall:
    """One call of an app: the body for its model group, and the sources it was given."""

    spec: AppSpec
    body: dict[str, Any]
    hits: list[Hit] | None  # None: not a RAG app

    @property
    def name(self) -> str:
        return self.spec.name

    def citations(self, answer: str) -> list[dict[str, Any]] | None:
        if self.hits is None:
            return None
        from ailab.knowledge import citations

        return citations(answer, self.hits)

    def finish_reply(self, reply: dict[str, Any]) -> dict[str, Any]:
        """A unary reply with the app's name and, for a RAG app, `citations` as the knowledge routes give."""
        reply["app"] = self.name
        cites = self.citations(_answer(reply))
        if cites is not None:
            reply["citations"] = cites
        return reply

    def trailer(self, answer: str, last: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The final chunk of a streamed RAG answer (before [DONE]): no choices, the citations."""
        cites = self.citations(answer)
        if cites is None:
            return None
        last = last or {}
        return {
            "id": last.get("id", "chatcmpl-app"),
            "object": "chat.completion.chunk",
            "created": last.get("created", 0),
            "model": last.get("model", self.spec.model),
            "choices": [],
            "app": self.name,
            "citations": cites,
        }


def _answer(reply: dict[str, Any]) -> str:
    choices = reply.get("choices") or [{}]
    return str(((choices[0] or {}).get("message") or {}).get("content") or "")


class AppService:
    def __init__(
        self,
        apps: AppSet,
        project_id: Callable[[str], str | None],
        knowledge: Callable[[], KnowledgeService] | None = None,
    ) -> None:
        self.apps = apps
        self._project_id = project_id
        self._knowledge = knowledge
        self._projects: dict[str, str] = {}  # project name or id -> id, once it resolved

    # -- who may use what ------------------------------------------------------------------------

    def project_of(self, spec: AppSpec) -> str | None:
        if spec.project is None:
            return None
        found = self._projects.get(spec.project)
        if found is None:
            found = self._project_id(spec.project)
            if found is None:
                return spec.project  # no such project (yet): only administrators reach the app
            self._projects[spec.project] = found
        return found

    def may_use(self, principal: Principal, spec: AppSpec) -> bool:
        return principal.may_use(spec.alias) and bool(
            decide(principal, "apps.use", project_id=self.project_of(spec))
        )

    def visible(self, principal: Principal, permission: str = "apps.use") -> list[AppSpec]:
        return [
            s
            for s in self.apps.apps.values()
            if principal.may_use(s.alias) and decide(principal, permission, project_id=self.project_of(s))
        ]

    def get(self, principal: Principal, name: str, permission: str = "apps.use") -> AppSpec:
        """The app, if the caller may use it; one 404 for a missing app and for one of another project."""
        if not holds(principal, permission):
            raise AppRequestError(
                decide(principal, permission).reason, 403, "permission_denied", param="model"
            )
        spec = self.apps.apps.get(name)
        if spec is None or spec not in self.visible(principal, permission):
            raise AppRequestError(
                f"The app `{name[:100]}` does not exist or you do not have access to it.",
                404,
                "app_not_found",
                param="model",
            )
        return spec

    # -- a call ------------------------------------------------------------------------------------

    @staticmethod
    def alias_of(model: Any) -> str | None:
        if isinstance(model, str) and model.startswith(ALIAS_PREFIX):
            return model[len(ALIAS_PREFIX) :]
        return None

    async def prepare(self, principal: Principal, name: str, body: dict[str, Any]) -> AppCall:
        spec = self.get(principal, name)
        values = variables_of(spec, body.get("variables"))
        hits = None
        sources = None
        if spec.knowledge is not None:
            hits = await self._retrieve(acting(principal), spec, last_user_text(body.get("messages")))
            sources = format_sources(hits)
        system = render_system(spec, values, sources)
        return AppCall(spec, rewrite_body(spec, body, system), hits)

    async def _retrieve(self, principal: Principal, spec: AppSpec, query: str) -> list[Hit]:
        from ailab.knowledge import KnowledgeError

        assert spec.knowledge is not None
        if self._knowledge is None:
            raise AppRequestError(f"app {spec.name!r}: knowledge is not available", 503, "app_unavailable")
        if not query.strip():
            raise AppRequestError("messages: no user message to retrieve sources for", param="messages")
        svc = self._knowledge()
        k = spec.knowledge
        try:
            colls = [svc.get(c) for c in k.collections]
            owner = self.project_of(spec)
            for c in colls:
                if c.project_id not in (None, owner):
                    raise AppRequestError(
                        f"app {spec.name!r}: collection {c.name!r} belongs to another project",
                        503,
                        "app_unavailable",
                    )
            return await svc.search(principal, colls, query, k.k, k.filters, k.mode, rerank=k.rerank)
        except KnowledgeError as exc:
            status = exc.status if exc.status not in (404,) else 503
            code = exc.code if status != 503 else "app_unavailable"
            raise AppRequestError(f"app {spec.name!r}: {exc}", status, code) from None


def acting(principal: Principal) -> Principal:
    """The caller as the app acts for it: the app grants the model groups it calls (its own and the
    collections' embedding model), so a key scoped to `app:NAME` alone can use the app; usage and budgets
    stay the caller's."""
    if principal.allowed_models is None:
        return principal
    return dataclasses.replace(principal, allowed_models=None)


def format_sources(hits: list[Hit]) -> str:
    from ailab.knowledge import source_label

    if not hits:
        return "(no sources were found)"
    return "\n\n".join(f"[{n}] {source_label(h)}\n{h.text[:MAX_SOURCE_CHARS]}" for n, h in enumerate(hits, 1))
