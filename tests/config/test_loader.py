"""ailab.yaml loading: LiteLLM compatibility, env references, precedence, warnings and precise errors."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml

from ailab.config import ConfigError, load_config
from tests.conftest import MASTER, UPSTREAM_KEY

# LiteLLM's documented load-balancing example (docs.litellm.ai/docs/proxy/load_balancing), verbatim but for
# the endpoints and keys, which point at a local server that speaks Azure OpenAI's wire format.
LITELLM_DOCS_EXAMPLE = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/<your-deployment-name>
      api_base: {base}
      api_key: os.environ/AZURE_API_KEY
      rpm: 6      # Rate limit for this deployment: in requests per minute (rpm)
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-small-ca
      api_base: {base}
      api_key: os.environ/AZURE_API_KEY
      rpm: 6
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-large
      api_base: {base}
      api_key: os.environ/AZURE_API_KEY
      rpm: 1440

router_settings:
  routing_strategy: simple-shuffle # Literal["simple-shuffle", "least-busy", "usage-based-routing","latency-based-routing"], default="simple-shuffle"
  model_group_alias: {{"gpt-4": "gpt-3.5-turbo"}} # all requests with `gpt-4` will be routed to models with `gpt-3.5-turbo`
  num_retries: 2
  timeout: 30                                  # 30 seconds
  redis_host: localhost                        # set this when using multiple litellm proxy deployments
  redis_password: os.environ/REDIS_PASSWORD
  redis_port: 1992

general_settings:
  master_key: sk-1234
"""

# The shape of LiteLLM's quick-start config (docs.litellm.ai/docs/proxy/configs): providers we do not serve
# and the wildcard entry are skipped with warnings; everything else runs.
LITELLM_QUICKSTART = """
model_list:
  - model_name: vllm-models
    litellm_params:
      model: openai/facebook/opt-125m # the `openai/` prefix tells litellm it's openai compatible
      api_base: {base}/v1
      api_key: none
      rpm: 1440
    model_info:
      version: 2
  - model_name: bedrock-claude-v1
    litellm_params:
      model: bedrock/anthropic.claude-instant-v1
  - model_name: "*"
    litellm_params:
      model: "*"
litellm_settings:
  drop_params: True
  success_callback: ["langfuse"]
  num_retries: 3
general_settings:
  master_key: sk-1234
  alerting: ["slack"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_litellm_docs_example_loads_and_serves(openai_upstream, tmp_path, monkeypatch, make_gateway):
    monkeypatch.setenv("AZURE_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("REDIS_PASSWORD", "unused")
    path = write(tmp_path, LITELLM_DOCS_EXAMPLE.format(base=openai_upstream.url))
    loaded = load_config(path, tmp_path / "d")
    assert [m.litellm_params.api_key for m in loaded.config.model_list] == [UPSTREAM_KEY] * 3
    assert any("redis_host" in w for w in loaded.warnings)
    gw = make_gateway(yaml.safe_load(path.read_text()), master_key=None)
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-1234", max_retries=0)
    assert {m.id for m in client.models.list()} == {"gpt-3.5-turbo", "gpt-4"}
    for name in ("gpt-3.5-turbo", "gpt-4"):
        r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "echo: hi"
    calls = openai_upstream.up.requests("/openai/deployments/")
    assert len(calls) == 2 and all(c["query"]["api-version"] for c in calls)
    assert {c["headers"]["api-key"] for c in calls} == {UPSTREAM_KEY}


def test_litellm_quickstart_skips_what_it_cannot_serve(openai_upstream, tmp_path, make_gateway, caplog):
    cfg = yaml.safe_load(LITELLM_QUICKSTART.format(base=openai_upstream.url))
    loaded = load_config(write(tmp_path, yaml.safe_dump(cfg)), tmp_path / "d")
    warnings = "\n".join(loaded.warnings)
    assert "litellm_settings.drop_params" in warnings and "general_settings.alerting" in warnings
    assert "model_list[0].model_info.version" in warnings
    assert loaded.config.router_settings.num_retries == 3
    openai_upstream.up.api_key = None
    gw = make_gateway(cfg, master_key=None)
    assert "bedrock" in caplog.text and "wildcard" in caplog.text
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-1234", max_retries=0)
    assert [m.id for m in client.models.list()] == ["vllm-models"]
    assert client.chat.completions.create(model="vllm-models", messages=[{"role": "user", "content": "x"}])


def test_env_reference_missing_names_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    path = write(
        tmp_path,
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/NOPE_KEY}\n",
    )
    with pytest.raises(
        ConfigError,
        match=r"config.yaml: model_list\[0\].litellm_params.api_key: environment variable NOPE_KEY",
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, rpm: -1}\n",
            r"model_list\[0\].litellm_params.rpm",
        ),
        ("model_list:\n  - litellm_params: {model: openai/x}\n", r"model_list\[0\].model_name"),
        ("router_settings: {routing_strategy: fastest}\n", "router_settings.routing_strategy"),
        ("router_settings: {fallbacks: [{a: [b]}]}\n", r"router_settings.fallbacks\[0\]: model group 'a'"),
        ("- just a list\n", "top level must be a mapping"),
        ("model_list: [\n", "not valid YAML"),
    ],
)
def test_invalid_config_fails_with_file_path_and_reason(tmp_path, text, where):
    with pytest.raises(ConfigError, match=where) as exc:
        load_config(write(tmp_path, text))
    assert "config.yaml" in str(exc.value)


def test_precedence_flag_env_file(tmp_path, monkeypatch):
    path = write(tmp_path, "general_settings: {master_key: from-file}\nailab: {port: 9000}\n")
    assert load_config(path).config.general_settings.master_key == "from-file"
    monkeypatch.setenv("AILAB_MASTER_KEY", "from-env")
    monkeypatch.setenv("AILAB_PORT", "9100")
    cfg = load_config(path).config
    assert (cfg.general_settings.master_key, cfg.ailab.port) == ("from-env", 9100)
    monkeypatch.setenv("AILAB_CONFIG", str(path))
    monkeypatch.setenv("AILAB_DATA_DIR", str(tmp_path / "env-data"))
    assert load_config().path == path
    assert load_config().data_dir == tmp_path / "env-data"
    assert load_config(data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"


def test_no_config_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_config()
    assert loaded.path is None and loaded.config.model_list == [] and loaded.data_dir == Path(".ailab")


def test_master_key_generated_once_with_mode_0600(tmp_path, make_gateway):
    from ailab.access import ensure_master_key

    key, created = ensure_master_key(None, tmp_path)
    assert created and key.startswith("sk-ailab-")
    assert (tmp_path / "master_key").stat().st_mode & 0o777 == 0o600
    assert ensure_master_key(None, tmp_path) == (key, False)
    assert MASTER not in key


def test_knowledge_section_is_validated_at_load(tmp_path):
    from ailab.config.models import KnowledgeSettings
    from ailab.knowledge.embedder import MODEL_NAME

    assert KnowledgeSettings().embedding_model == MODEL_NAME  # the built-in embedder's model group
    with pytest.raises(ConfigError, match=r"knowledge\.chunk_tokens"):
        load_config(write(tmp_path, "knowledge: {chunk_tokens: 4}\n"))
    assert load_config(write(tmp_path, "knowledge: {store: qdrant}\n")).warnings == []
