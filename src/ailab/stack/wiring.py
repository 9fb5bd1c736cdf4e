"""Resolve declared wiring (references to other components and to secrets) for one target."""

from __future__ import annotations

from collections.abc import Callable

from ailab.stack.model import EnvValue, HostPort, Join, Ref, RenderContext, SecretRef


def resolve(value: EnvValue, ctx: RenderContext, secret: Callable[[str], str]) -> str:
    """A concrete string; `secret(key)` decides how a secret appears (a value, `${KEY}`, `$(KEY)`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Ref):
        return ctx.url(value)
    if isinstance(value, HostPort):
        return ctx.address(value.component, value.port)
    if isinstance(value, SecretRef):
        return secret(value.key)
    return "".join(resolve(part, ctx, secret) for part in value.parts)


def secret_keys(value: EnvValue) -> list[str]:
    if isinstance(value, SecretRef):
        return [value.key]
    if isinstance(value, Join):
        return [k for part in value.parts for k in secret_keys(part)]
    return []


def references(value: EnvValue) -> list[Ref | HostPort]:
    """Which other components this value points at (for the wiring test and dependency checks)."""
    if isinstance(value, Ref | HostPort):
        return [value]
    if isinstance(value, Join):
        return [r for part in value.parts for r in references(part)]
    return []
