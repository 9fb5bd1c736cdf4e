"""The built-in embedder: a real model from installed packages, served as a gateway provider."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from ailab.knowledge.embedder import EmbedderUnavailable, MiniLMEmbedder, model_file, tokenizer_file
from tests.conftest import MASTER


def test_model_files_come_from_installed_packages():
    assert model_file().name == "model.onnx" and "site-packages" in str(model_file())
    assert tokenizer_file().name == "tokenizer.json"


def test_embeddings_are_unit_vectors_with_meaning():
    vectors, tokens = MiniLMEmbedder().embed(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "The database replicates its WAL."]
    )
    assert vectors.shape == (3, 384) and tokens > 15
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_a_missing_model_file_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr("ailab.knowledge.embedder._package_dir", lambda name: tmp_path)
    with pytest.raises(EmbedderUnavailable, match="pip install"):
        model_file()


def test_served_on_v1_embeddings_and_listed(make_gateway):
    entry = {"model_name": "minilm", "litellm_params": {"model": "local/all-MiniLM-L6-v2"}}
    gw = make_gateway({"model_list": [entry]})
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    assert [m.id for m in client.models.list()] == ["minilm"]
    out = client.embeddings.create(model="minilm", input=["hello world", "goodbye"])
    assert len(out.data) == 2 and len(out.data[0].embedding) == 384 and out.usage.prompt_tokens > 0
    b64 = client.embeddings.create(model="minilm", input="hello world")  # SDK asks for base64
    assert np.allclose(b64.data[0].embedding, out.data[0].embedding, atol=1e-5)
