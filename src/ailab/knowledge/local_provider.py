"""The built-in embedder as a gateway provider (`local/all-MiniLM-L6-v2`), so its calls are routed, metered
and ledgered like any other. The model runs in a worker thread: the event loop never blocks on it.

Cost: a local model has no list price; the ledger prices it from `model_info` (token prices, or
`cost_per_hour` / `watts` × `kwh_price`) and otherwise records it as unpriced (counted by a metric).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, ClassVar

import aiohttp

from ailab.gateway import Deployment, Provider, ProviderRegistry, Router, UpstreamError
from ailab.knowledge.embedder import MODEL_NAME, EmbedderUnavailable, shared_embedder

BUILTIN_GROUP = MODEL_NAME  # the model group the lab adds when the config names no embedding model
BUILTIN_MODEL = f"local/{MODEL_NAME}"


class LocalEmbedProvider(Provider):
    name: ClassVar[str] = "local"
    default_api_base: ClassVar[str | None] = "local://in-process"

    def __init__(self, deployment: Deployment, session: aiohttp.ClientSession) -> None:
        super().__init__(deployment, session)
        if deployment.model != MODEL_NAME:
            raise ValueError(f"deployment {deployment.id}: the local provider serves only {MODEL_NAME}")
        self._embedder = shared_embedder()
        # onnxruntime already uses every core for one batch; queueing batches keeps memory flat.
        self._gate = asyncio.Semaphore(1)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else list(raw or [])
        if not all(isinstance(t, str) for t in texts):
            raise UpstreamError("local embeddings take strings only (not token arrays)", status=400)
        try:
            async with self._gate:
                vectors, tokens = await asyncio.to_thread(self._embedder.embed, texts)
        except EmbedderUnavailable as exc:
            raise UpstreamError(str(exc), kind="http", status=501) from None
        b64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode() if b64 else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": self.deployment.group,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def builtin_deployment() -> Deployment:
    return Deployment(
        id=f"{BUILTIN_GROUP}#builtin",
        group=BUILTIN_GROUP,
        provider="local",
        provider_label="local",
        price_id=None,
        model=MODEL_NAME,
        api_base=None,
        api_key=None,
        mode="embedding",
    )


def ensure_builtin(router: Router, session: aiohttp.ClientSession) -> None:
    """Serve the built-in embedder as model group `all-MiniLM-L6-v2` unless the config already has that
    name. Added when the knowledge service starts (not at lab start), so a lab that does not use knowledge
    lists only its configured models."""
    if BUILTIN_GROUP in router.groups:
        return
    dep = builtin_deployment()
    router.add_deployment(dep, LocalEmbedProvider(dep, session))


def register(registry: ProviderRegistry) -> None:
    """The `local` entry point of `ailab.providers`: config may name `local/all-MiniLM-L6-v2` too."""
    registry.add(LocalEmbedProvider)
