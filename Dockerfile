# syntax=docker/dockerfile:1
# The memory-service API image: a wheel built in a throwaway stage, installed into a venv that is
# copied into a clean runtime stage (no compilers, no pip cache), run as an unprivileged user.
#
# The base is pinned to a patch release. To pin by digest (recommended for releases), resolve it
# where a registry is reachable and pass it at build time:
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm --format '{{json .Manifest.Digest}}'
#   docker build --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml requirements.lock README.md* ./
COPY service ./service
# The dependencies exactly as locked (hashes checked), then the service's wheel without resolving again.
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock \
 && python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/memory_service-*.whl \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="memory-service" \
      org.opencontainers.image.description="Self-hosted long-term memory service for AI agents" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    API_HOST=0.0.0.0 \
    API_PORT=8080 \
    DATA_DIR=/data
RUN groupadd --system --gid 10001 memory \
 && useradd --system --uid 10001 --gid memory --home-dir /data --no-create-home --shell /usr/sbin/nologin memory \
 && install -d -o memory -g memory -m 0750 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["memory-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "4"]
