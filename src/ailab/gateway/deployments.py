"""Turn `model_list` entries into Deployments and their adapters (the gateway's routing table)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import aiohttp

from ailab.config import SECRET_REF, ConfigError, LabConfig, LiteLLMParams, ModelEntry
from ailab.gateway.providers.base import Provider
from ailab.gateway.providers.registry import ProviderRegistry
from ailab.gateway.types import Deployment

KNOWN_PARAMS = frozenset(LiteLLMParams.model_fields)


def build_deployments(
    cfg: LabConfig, registry: ProviderRegistry, warn: Callable[[str], None] | None = None
) -> dict[str, list[Deployment]]:
    """Deployments by model group. Entries this gateway cannot serve (a provider without an adapter,
    LiteLLM's `*` wildcard) are skipped with a warning that names them, so the rest of the file still runs.
    """
    groups: dict[str, list[Deployment]] = defaultdict(list)
    for i, entry in enumerate(cfg.model_list):
        where = f"model_list[{i}] ({entry.model_name})"
        if "*" in entry.model_name or "*" in entry.litellm_params.model:
            _warn(warn, f"{where}: wildcard routing is not supported; entry skipped")
            continue
        try:
            dep = _deployment(entry, len(groups[entry.model_name]), cfg, registry)
        except KeyError as exc:
            _warn(warn, f"{where}: {exc.args[0]}; entry skipped")
            continue
        groups[entry.model_name].append(dep)
    return {g: deps for g, deps in groups.items() if deps}


def apply_aliases(groups: dict[str, list[Deployment]], cfg: LabConfig) -> dict[str, list[Deployment]]:
    """LiteLLM's model_group_alias: extra names that route to an existing group."""
    out = dict(groups)
    for alias, target in cfg.router_settings.model_group_alias.items():
        name = target if isinstance(target, str) else str(target.get("model", ""))
        if name in groups and alias not in groups:
            out[alias] = groups[name]
    return out


def _warn(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is None:
        raise ConfigError(message)
    warn(message)


def _deployment(entry: ModelEntry, n: int, cfg: LabConfig, registry: ProviderRegistry) -> Deployment:
    p = entry.litellm_params
    prefix, model = registry.split(p.model)
    if prefix not in registry.aliases or registry.alias(prefix).adapter not in registry.adapters:
        raise KeyError(f"provider {prefix!r} has no adapter")
    alias = registry.alias(prefix)
    info = entry.model_info
    mode = info.mode or _mode_of(model.lower())
    key_ref = p.api_key[len(SECRET_REF) :] if p.api_key and p.api_key.startswith(SECRET_REF) else None
    return Deployment(
        id=info.id or f"{entry.model_name}:{p.model}#{n}",
        group=entry.model_name,
        provider=alias.adapter,
        provider_label=prefix,
        price_id=alias.price_id,
        model=model,
        api_base=p.api_base or alias.api_base,
        api_key=None if key_ref else p.api_key,
        api_key_ref=key_ref,
        api_version=p.api_version,
        timeout=p.timeout or cfg.router_settings.timeout,
        stream_timeout=p.stream_timeout,
        max_retries=p.max_retries,
        rpm=p.rpm,
        tpm=p.tpm,
        weight=p.weight,
        mode=mode,
        headers=dict(p.extra_headers or {}),
        info=info,
    )


def build_providers(
    groups: dict[str, list[Deployment]], registry: ProviderRegistry, session: aiohttp.ClientSession
) -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for deps in groups.values():
        for dep in deps:
            if dep.id in out:
                if out[dep.id].deployment is dep:
                    continue  # the same deployment under an alias name
                raise ConfigError(f"model_info.id {dep.id!r} is used by two deployments")
            try:
                out[dep.id] = registry.adapter(dep.provider)(dep, session)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    return out


def ollama_deployments(names: list[str], base_url: str) -> dict[str, list[Deployment]]:
    """Deployments for the models a local Ollama reports, one group per model name. Like Ollama itself,
    `llama3.2` also reaches `llama3.2:latest`."""
    groups: dict[str, list[Deployment]] = {}
    for name in names:
        dep = Deployment(
            id=f"ollama/{name}#0",
            group=name,
            provider="ollama",
            provider_label="ollama",
            price_id=None,
            model=name,
            api_base=base_url,
            api_key=None,
        )
        groups[name] = [dep]
        short = name.removesuffix(":latest")
        if short != name and short not in names:
            groups.setdefault(short, [dep])
    return groups


def _mode_of(model: str) -> str:
    """The mode a model name implies when model_info.mode does not say (`bge-reranker-v2` reranks)."""
    return "rerank" if "rerank" in model else "embedding" if "embed" in model else "chat"
