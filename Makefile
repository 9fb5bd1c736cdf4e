# Two commands on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS := --disable-pip-version-check -q -c constraints.txt

.PHONY: up test install install-dev lint typecheck pytest clean bench bench-deps dist

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

# The first install takes a few minutes (onnxruntime, qdrant-client, …): pip's own lines show progress.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	@echo "==> installing Local AI Lab (PyPI: local-ai-lab) and its dependencies into $(VENV)"
	@# The distribution was once named `ailab` (an unrelated project on PyPI): drop that metadata.
	@$(PIP) show ailab >/dev/null 2>&1 && $(PIP) uninstall -y -q ailab || true
	$(PIP) install --disable-pip-version-check --progress-bar off -c constraints.txt -e .
	@echo "==> installed: $(BIN)/ailab"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "==> installing the development tools (.[dev])"
	$(PIP) install $(PIP_FLAGS) -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Another port or address: `make up ARGS="--port 9000"` (or AILAB_PORT=9000 make up).
up: install
	@echo "==> starting the lab (Ctrl-C stops it)"
	$(BIN)/ailab up $(ARGS)

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/hadolint Dockerfile

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

test: test-deps lint typecheck pytest

# Benchmarks are not tests: `make bench` measures, side by side in one run (docs/benchmarks.md).
LITELLM := .bench/litellm-venv/bin/litellm
PORTKEY := .bench/portkey/node_modules/@portkey-ai/gateway/build/start-server.js

bench-deps: install-dev
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nginx-light wrk)
	@test -x $(LITELLM) || ($(PYTHON) -m venv .bench/litellm-venv && \
		.bench/litellm-venv/bin/pip install -q "litellm[proxy]==1.108.7")
	@# Portkey's gateway, the Node peer of `python -m bench latency` (skipped there when absent or no npm).
	@test -f $(PORTKEY) || ! command -v npm >/dev/null || (mkdir -p .bench/portkey && \
		npm install --prefix .bench/portkey --no-audit --no-fund --loglevel=error @portkey-ai/gateway@1.15.2)

bench: bench-deps
	$(BIN)/python -m bench all $(BENCH_ARGS)
	$(MAKE) bench-knowledge

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache dist

# The release artefacts (docs/deploy.md): sdist + wheel, checked, then installed with all their
# dependencies into a brand-new venv that runs `ailab version` (slow: a full install from the index).
dist: install-dev
	rm -rf dist .dist-venv
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(PYTHON) -m venv .dist-venv
	.dist-venv/bin/pip install --disable-pip-version-check -q -c constraints.txt dist/*.whl
	.dist-venv/bin/ailab version
	rm -rf .dist-venv

# --- Stack (docs/stack.md): the seed's `make` targets, each a call to `ailab`. --------------------------
AILAB := $(BIN)/ailab
.PHONY: test-deps install-monitoring install-qdrant install-cost-tracking install-litellm install-dify \
	setup-cicd install-jupyter install-vscode install-advanced-vectordb install-vault setup-multiuser \
	setup-public-access export-kubernetes install-all-phase1 install-all-phase2 install-all-phase3 \
	install-all-phase4 backup

# promtool and prometheus (Debian `prometheus`) for the stack tests, Debian's chromium for the console's
# browser tests (Playwright drives it; `playwright install` is never run), and npm's oidc-provider for the
# SSO tests; CI runs as root.
test-deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus)
	@test -x /usr/bin/chromium || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@# The SSO tests' OpenID provider (npm oidc-provider, panva) from its lock file (docs/sso.md).
	@test -d tests/access/oidc/node_modules/oidc-provider || \
		(cd tests/access/oidc && npm ci --no-audit --no-fund --ignore-scripts)

install-monitoring: install
	$(AILAB) install prometheus alertmanager grafana node-exporter cadvisor $(ARGS)
install-qdrant: install
	$(AILAB) install qdrant $(ARGS)
install-cost-tracking: install
	$(AILAB) install ailab prometheus grafana $(ARGS)
	@echo "cost tracking is the lab's ledger: see 'ailab usage' and the Grafana 'Cost' dashboard"
install-litellm: install
	@echo "installing the lab's own gateway: it reads LiteLLM's config format (model_list), no LiteLLM needed"
	$(AILAB) install ailab $(ARGS)
install-dify: install
	$(AILAB) install dify $(ARGS)
setup-cicd: install
	$(AILAB) render compose --out deploy/compose
	$(AILAB) export kubernetes --out deploy/kubernetes
	@echo "rendered deploy/compose and deploy/kubernetes: commit them or let CI render them the same way"
install-jupyter: install
	$(AILAB) install jupyter $(ARGS)
install-vscode: install
	$(AILAB) install code-server $(ARGS)
install-advanced-vectordb: install
	$(AILAB) install milvus $(ARGS)
install-vault: install
	$(AILAB) install openbao $(ARGS)
setup-multiuser: install
	$(AILAB) install postgres redis $(ARGS)
	@echo "users, projects and keys: 'ailab users add', 'ailab projects', 'ailab keys create'"
setup-public-access: install
	$(AILAB) install traefik cloudflared $(ARGS)
	@echo "publish a component with a login: ailab expose open-webui --host chat.example.org --via cloudflared"
export-kubernetes: install
	$(AILAB) export kubernetes $(ARGS)
install-all-phase1 install-all-phase2 install-all-phase3 install-all-phase4: install
	$(AILAB) install phase$(subst install-all-phase,,$@) $(ARGS)
backup: install
	$(AILAB) backup $(ARGS)

# Knowledge benchmarks (docs/benchmarks.md): the PostgreSQL 15 docs from Debian as the corpus.
.PHONY: bench-knowledge
bench-knowledge: install-dev
	@test -d /usr/share/doc/postgresql-doc-15/html || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-doc-15)
	$(BIN)/python -m bench.knowledge all

# The embedded store at a million chunks: built niced and kept (ef_construction 100: 30+ min on the shared
# 2-core box), then measured on the kept store with three ef_search values.
.PHONY: bench-knowledge-1m
bench-knowledge-1m: install-dev
	nice -n 19 $(BIN)/python -m bench.knowledge.scale --n 1000000 --queries 200 --text-words 30 \
		--keep .bench/scale-1m --build-only --peers ''
	$(BIN)/python -m bench.knowledge.scale --n 1000000 --queries 200 --reuse .bench/scale-1m \
		--ef-search 96,200,400 --peers milvus --cap 240
