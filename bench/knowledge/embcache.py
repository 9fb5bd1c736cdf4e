"""An embedding cache for the knowledge benchmarks: vectors by (model, text) hash in an .npz, so that a
chunking or context change re-embeds only the texts it changed (the built-in embedder does ~20 chunks/s
here; the whole PostgreSQL docs take 10+ minutes).

`install()` puts a caching wrapper in place of the process's shared built-in embedder, so a lab ingest
through the gateway (routed, metered) reads cached vectors and embeds only the misses.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(".bench/knowledge/embeddings.npz")


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()[:20]


class EmbeddingCache:
    def __init__(self, path: Path = CACHE) -> None:
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        self.dirty = 0
        self._lock = threading.Lock()
        if path.exists():
            data = np.load(path)
            self.rows = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        with self._lock:
            self.rows[key] = np.asarray(vector, dtype=np.float32)
            self.dirty += 1

    def save(self) -> None:
        with self._lock:
            if not self.dirty:
                return
            keys = np.array(list(self.rows))
            vectors = np.stack(list(self.rows.values())).astype(np.float32)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.stem + ".tmp.npz")
            np.savez(tmp, keys=keys, vectors=vectors)
            tmp.replace(self.path)
            self.dirty = 0


class CachingEmbedder:
    """The built-in embedder's interface (`embed`, `count_tokens`), with vectors read from the cache."""

    def __init__(self, inner: Any, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.dimension = inner.dimension
        self.misses = 0

    def count_tokens(self, texts: list[str]) -> list[int]:
        counted: list[int] = self.inner.count_tokens(texts)
        return counted

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        keys = [text_key(self.name, t) for t in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        todo = [i for i, k in enumerate(keys) if self.cache.get(k) is None]
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                out[i] = hit
        tokens = 0
        if todo:
            vectors, tokens = self.inner.embed([texts[i] for i in todo])
            for i, v in zip(todo, vectors, strict=True):
                out[i] = v
                self.cache.put(keys[i], v)
            self.misses += len(todo)
            if self.cache.dirty >= 2048:
                self.cache.save()
        return out, tokens


def install(cache: EmbeddingCache) -> CachingEmbedder:
    """Replace the process's shared built-in embedder with a caching one (benchmarks only)."""
    from ailab.knowledge import embedder

    wrapper = CachingEmbedder(embedder.MiniLMEmbedder(), cache)
    with embedder._shared_lock:
        embedder._shared = wrapper  # type: ignore[assignment]
    return wrapper
