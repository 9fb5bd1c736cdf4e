# syntax=docker/dockerfile:1
# The lab's container image: ghcr.io/local-ai-lab/ailab (docs/deploy.md). Built multi-arch by CI
# (.github/workflows/release.yml); lint: `hadolint Dockerfile` (part of `make test`).
# The base is pinned by digest; bump tag and digest together (Dependabot/Renovate do this).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- stage 1: the lab's wheel and the wheels of everything it needs, against the pinned constraints ----
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m pip install "build==1.6.1"
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
# src/ailab/notebooks links here: the example notebooks ship as package data (`ailab install jupyter`).
COPY notebooks ./notebooks
RUN python -m build --wheel --outdir /dist . \
    && python -m pip wheel --constraint constraints.txt --wheel-dir /wheels /dist/*.whl

# --- stage 2: runtime, no compiler, no build tools, not root ------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="Local AI Lab" \
      org.opencontainers.image.source="https://github.com/local-ai-lab/ailab" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    AILAB_DATA_DIR=/data
RUN groupadd --system --gid 10001 ailab \
    && useradd --system --uid 10001 --gid ailab --home-dir /data --shell /usr/sbin/nologin ailab \
    && mkdir -p /data /etc/ailab \
    && chown ailab:ailab /data
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels /wheels/local_ai_lab-*.whl
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "ailab.stack.healthcheck", "http://127.0.0.1:8765/health/live"]
ENTRYPOINT ["ailab"]
# Authentication stays on: every /v1 and /api request needs a key (the master key comes from
# AILAB_MASTER_KEY, else it is generated once into /data), and /metrics needs one beyond loopback.
CMD ["up", "--host", "0.0.0.0", "--port", "8765"]
