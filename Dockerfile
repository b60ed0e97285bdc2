# One image for all four services. The command picks the service and whether it
# runs the API or the worker:
#   stories serve content --host 0.0.0.0 --port 8000     (an API)
#   stories worker content --metrics-port 9100           (its relay and consumer)
#   stories migrate                                      (once, before the APIs)
#
# BASE_IMAGE must provide Python 3.11+ with venv (python:3.11-slim-bookworm by
# default; CI builds on a Debian made by debootstrap, see scripts/build-image).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- the dashboard's chart library, from its npm lock file -----------------------------
FROM ${NODE_IMAGE} AS dashboard
WORKDIR /dashboard
COPY services/metrics/dashboard/package.json services/metrics/dashboard/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- dependencies and the project, from uv.lock -------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first: this layer changes only when the lock file does.
COPY pyproject.toml uv.lock README.md ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --python python3
COPY shared shared
COPY services services
COPY stories stories
RUN /opt/uv/bin/uv sync --frozen --no-dev --python python3
COPY --from=dashboard /dashboard/node_modules services/metrics/dashboard/node_modules

# --- what runs: the virtualenv and the code, as an unprivileged user ----------------------
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="stories-platform" \
      org.opencontainers.image.description="1001 Stories: content, access, delivery and metrics services"
RUN groupadd --system --gid 10001 stories \
    && useradd --system --uid 10001 --gid stories --home-dir /app --shell /usr/sbin/nologin stories
WORKDIR /app
COPY --from=build --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_JSON=true \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
USER 10001:10001
EXPOSE 8000 9100
# An API answers /healthz; a worker serves its Prometheus figures on --metrics-port
# (set HEALTHCHECK_URL=http://127.0.0.1:9100/metrics for it).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
ENTRYPOINT ["stories"]
CMD ["serve", "content", "--host", "0.0.0.0", "--port", "8000"]
