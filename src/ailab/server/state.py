"""Everything a running lab holds, built by the app factory and torn down by its lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import Engine

from ailab.access import AccessService, AuditLog, Authenticator, ensure_master_key
from ailab.config import LoadedConfig
from ailab.db import open_database
from ailab.gateway import (
    Budgeter,
    Deployment,
    GatewayAPI,
    ProviderRegistry,
    Router,
    apply_aliases,
    build_deployments,
    build_providers,
    default_registry,
    ollama_deployments,
)
from ailab.ledger import LedgerWriter, PriceBook, UsageEvent
from ailab.limits import Limiter, make_limiter
from ailab.observability import Metrics
from ailab.secrets import SecretRefresher, SecretStore, open_secret_store
from ailab.server.budgets import reseed_when_lost, seed_budgets
from ailab.types import PICO_PER_USD

if TYPE_CHECKING:
    from ailab.gateway import ResponseStore
    from ailab.knowledge import KnowledgeService

log = logging.getLogger("ailab")


@dataclass
class LabState:
    loaded: LoadedConfig
    metrics: Metrics = field(default_factory=Metrics)
    registry: ProviderRegistry = field(default_factory=default_registry)
    started: int = field(default_factory=lambda: int(time.time()))
    engine: Engine | None = None
    ledger: LedgerWriter | None = None
    session: aiohttp.ClientSession | None = None
    router: Router | None = None
    api: GatewayAPI | None = None
    auth: Authenticator | None = None
    access: AccessService = field(init=False)
    # Routers of other pillars for the admin API: each is called with the started state.
    admin_routers: list[Callable[[LabState], Any]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    limiter: Limiter | None = None
    secrets: SecretStore | None = None
    knowledge: KnowledgeService | None = None  # built on first use (knowledge_service)
    sso: Any = None  # ailab.access.sso.wiring.Sso: OpenID Connect and tunnel identity (docs/sso.md)
    apps: Any = None  # ailab.apps.AppService: the apps of ailab.yaml and the apps folder
    responses: ResponseStore | None = None  # stored /v1/responses (write-behind)

    async def start(self) -> None:
        for warning in self.loaded.warnings:
            log.warning("%s", warning)
        self._start_access()
        self._start_limits()
        self._start_ledger()
        await self._start_gateway()
        self._serve_responses()
        self._start_apps()
        await self._start_budgets()
        self._start_background()

    def _start_access(self) -> None:
        """The database, keys and users (cached for the hot path), and single sign-on."""
        cfg = self.loaded.config
        master, _ = ensure_master_key(cfg.general_settings.master_key, self.loaded.data_dir)
        self.auth = Authenticator(master)
        self.engine = open_database(self.loaded)
        self.access = AccessService.build(self.engine, cfg.access, AuditLog.of(self.engine, self.loaded))
        self.access.cache.load()
        self.auth.resolvers.append(self.access.cache.resolve)
        from ailab.access.sso import start_sso

        self.sso = start_sso(self)

    def _start_limits(self) -> None:
        cfg = self.loaded.config
        self.limiter = make_limiter(cfg.limits)
        if cfg.limits.backend == "memory" and cfg.ailab.workers > 1:
            log.warning(
                "limits.backend is 'memory' with %d workers: each worker enforces limits on its own; "
                "set limits.backend: redis to share them",
                cfg.ailab.workers,
            )

    def _start_ledger(self) -> None:
        cfg = self.loaded.config
        assert self.engine is not None
        self.ledger = LedgerWriter(
            self.engine,
            PriceBook(cfg.general_settings.kwh_price),
            self.loaded.data_dir,
            batch_size=cfg.ailab.ledger_batch_size,
            flush_interval=cfg.ailab.ledger_flush_interval,
            on_written=self._on_written,
            on_lost=self._on_lost,
            max_queue=cfg.ailab.ledger_queue_size,
            journal=cfg.ailab.ledger_journal,
        )
        self.ledger.start()

    async def _start_gateway(self) -> None:
        """The upstream session, the model groups (configured or discovered), the router and the API."""
        cfg = self.loaded.config
        assert self.ledger is not None and self.auth is not None and self.limiter is not None
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=1000, ttl_dns_cache=300),
            json_serialize=None,  # type: ignore[arg-type]
        )
        groups = build_deployments(cfg, self.registry, warn=log.warning)
        if not groups and not cfg.model_list and cfg.ailab.discover_ollama:
            groups = await self._discover_ollama()
        groups = apply_aliases(groups, cfg)
        self._resolve_secrets(groups)
        self.router = Router(
            groups, build_providers(groups, self.registry, self.session), cfg.router_settings, self.metrics
        )
        self.api = GatewayAPI(
            self.router,
            self.auth,
            self.metrics,
            self.ledger.submit,
            int(cfg.general_settings.max_request_size_mb * 1024 * 1024),
            self.started,
            Budgeter(self.limiter, self.ledger.prices, self.metrics, cfg.limits.default_max_tokens),
        )

    async def _start_budgets(self) -> None:
        """Budget spend seeded into the limiter from the ledger (and again whenever a limiter loses it)."""
        assert self.engine is not None and self.limiter is not None and self.access is not None
        ledger = self.ledger
        assert ledger is not None
        reseed_when_lost(self.engine, self.limiter, self.access.cache.principals, lambda: ledger.flush(2.0))
        await seed_budgets(self.engine, self.limiter, self.access.cache.principals())

    def _start_background(self) -> None:
        cfg = self.loaded.config
        assert self.access is not None
        self.tasks.append(
            asyncio.create_task(self.access.cache.run(cfg.access.refresh_interval, self._keys_changed))
        )
        if cfg.backup.schedule:  # one worker runs it (a lock in the data dir): ailab.ops.schedule
            from ailab.ops import start_schedule

            self.tasks.append(start_schedule(self.loaded))

    def _serve_responses(self) -> None:
        """/v1/responses, its stored responses in the lab's database (ailab.responses_ttl_days)."""
        from ailab.gateway import ResponseStore, install_responses

        assert self.api is not None and self.engine is not None
        self.responses = ResponseStore(self.engine, self.loaded.config.ailab.responses_ttl_days * 86400)
        install_responses(self.api, self.responses)

    def _start_apps(self) -> None:
        """Apps are checked at start: a lab with an invalid app does not start (ailab apps validate)."""
        from ailab.server import apps as runtime
        from ailab.server.admin.apps import router

        self.apps = runtime.build(self)
        if self.api is not None:
            from ailab.apps import install

            install(self.api, self.apps)  # app:NAME, /v1/apps/NAME/chat/completions, /v1/models entries
        if router not in self.admin_routers:
            self.admin_routers.append(router)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        if hasattr(self, "access"):
            await asyncio.to_thread(self.access.denials.flush)  # repeated denials still only counted
        if self.knowledge is not None:
            self.knowledge.close()
        if self.session is not None:
            await self.session.close()
        if self.responses is not None:  # write-behind: what it still buffers, before the engine goes
            await self.responses.close()
        if self.ledger is not None:
            self.ledger.stop()
        if self.limiter is not None:
            await self.limiter.close()
        if self.engine is not None:
            self.engine.dispose()

    async def _discover_ollama(self) -> dict[str, list[Deployment]]:
        from ailab.gateway import list_ollama_models

        assert self.session is not None
        url = self.loaded.config.ailab.ollama_url
        names = await list_ollama_models(self.session, url)
        if names is None:
            log.warning(
                "no models configured and no Ollama answered at %s. Add models to ailab.yaml "
                "(model_list, LiteLLM format) — see docs/configuration.md",
                url,
            )
            return {}
        log.info("found Ollama at %s with %d models: %s", url, len(names), ", ".join(names))
        return ollama_deployments(names, url)

    def knowledge_service(self) -> KnowledgeService:
        """The knowledge pillar's service, built on first use from the parts this state holds (imported
        late: a lab that never uses knowledge does not load numpy, the stores or the parsers)."""
        if self.knowledge is None:
            from ailab.knowledge import KnowledgeService

            assert self.api is not None
            cfg = self.loaded.config
            raw = getattr(cfg, "knowledge", None) or (cfg.model_extra or {}).get("knowledge") or {}
            self.knowledge = KnowledgeService.build(
                self.loaded.data_dir,
                raw,
                self.api,
                self.metrics.knowledge,
                self.engine,
                self.router,
                self.session,
            )
        return self.knowledge

    def secret_store(self, actor: str) -> SecretStore:
        """A store acting (and audited) as `actor`, for the admin API."""
        assert self.engine is not None
        return open_secret_store(
            self.loaded.config.secrets,
            self.engine,
            self.loaded.data_dir,
            audit=self.access.audit,
            actor=actor,
        )

    async def refresh_keys(self) -> None:
        """Reload the key cache now if users, projects or keys changed (and re-seed their budgets)."""
        if await asyncio.to_thread(self.access.cache.refresh_if_changed):
            await self._keys_changed()

    async def _keys_changed(self) -> None:
        assert self.engine is not None and self.limiter is not None
        await seed_budgets(self.engine, self.limiter, self.access.cache.principals())

    def _resolve_secrets(self, groups: dict[str, list[Deployment]]) -> None:
        """Fill `secret/NAME` API keys from the secret store, and keep them fresh when rotated."""
        deployments = list({id(d): d for deps in groups.values() for d in deps}.values())
        if not any(d.api_key_ref for d in deployments):
            return
        assert self.engine is not None
        cfg = self.loaded.config
        self.secrets = open_secret_store(
            cfg.secrets, self.engine, self.loaded.data_dir, audit=self.access.audit, actor="gateway"
        )
        refresher = SecretRefresher(self.secrets, deployments)
        refresher.resolve_all()
        self.tasks.append(asyncio.create_task(refresher.run(cfg.secrets.refresh_interval)))

    def _on_lost(self, kind: str, n: int) -> None:
        counter = self.metrics.ledger_spilled if kind == "spilled" else self.metrics.ledger_dropped
        counter.inc(n)

    def _on_written(self, batch: list[tuple[UsageEvent, int | None]]) -> None:
        """Metrics for a written batch, summed first: one metric update per model, not per row."""
        m = self.metrics
        m.ledger_written.inc(len(batch))
        costs: dict[tuple[str, str], int] = {}
        unpriced: dict[str, int] = {}
        tokens: dict[tuple[str, str], int] = {}
        for ev, cost in batch:
            group = ev.group or "-"  # refused before a model group was known
            # Token counters are summed per written batch, off the hot path (they trail by a flush interval).
            tokens[(group, "prompt")] = tokens.get((group, "prompt"), 0) + ev.usage.prompt_tokens
            tokens[(group, "completion")] = tokens.get((group, "completion"), 0) + ev.usage.completion_tokens
            if cost is None:
                unpriced[group] = unpriced.get(group, 0) + 1
            elif cost:
                key = (group, ev.deployment.provider_label if ev.deployment else "-")
                costs[key] = costs.get(key, 0) + cost
        for (group, direction), n in tokens.items():
            if n:
                m.tokens.labels(group, direction).inc(n)
        for group, n in unpriced.items():
            m.unpriced.labels(group).inc(n)
        for (group, provider), pusd in costs.items():
            m.cost.labels(group, provider).inc(pusd / PICO_PER_USD)
