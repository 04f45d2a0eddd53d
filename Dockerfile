# syntax=docker/dockerfile:1
# Production-shaped image: one image for the API, the workers, migrations, the CLI and the JIRA simulator.
#   docker build -t tt-jira-sync .
#   docker run --env-file .env tt-jira-sync                        # API on :8000
#   docker run --env-file .env tt-jira-sync python -m workers      # a worker
# `docker compose up` (docker-compose.yml) runs the whole system; `make run` is the embedded path without Docker.

ARG PYTHON_VERSION=3.11

# ---- build: wheels for the project and its dependencies (compilers stay in this stage) ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY jirasim ./jirasim
COPY devstack ./devstack
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip wheel --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-index --find-links /wheels tt-jira-sync

# ---- runtime: the virtualenv, the migrations, a non-root user ----------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 ttsync \
 && useradd --system --uid 10001 --gid ttsync --home-dir /srv --shell /usr/sbin/nologin ttsync
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root migrations ./migrations
USER ttsync:ttsync
EXPOSE 8000
# liveness only (/readyz would mark the container unhealthy whenever PostgreSQL or Redis blips)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log"]
