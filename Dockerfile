# syntax=docker/dockerfile:1
# Production image: one image for the API (the default command), the workers, migrations, the CLI and the JIRA
# simulator. Build and run (docs/operations.md; `make image` does the build with podman):
#   docker build -t tt-jira-sync .
#   docker run --env-file .env -p 8000:8000 tt-jira-sync          # API on :8000
#   docker run --env-file .env tt-jira-sync python -m workers     # a worker
#   docker run --env-file .env tt-jira-sync alembic upgrade head  # migrations
# `docker compose up` (docker-compose.yml) runs the whole system; `make run` is the embedded path without Docker.
# tests/image builds this file in `make test` and runs every process from it.

ARG PYTHON_VERSION=3.11

# ---- requirements: the runtime dependencies listed in pyproject.toml, as a requirements file -----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS requirements
COPY pyproject.toml /src/
RUN python -c "import tomllib; print(*tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /requirements.txt

# ---- deps: the virtualenv with those dependencies ----------------------------------------------------------
# Only the list is copied before the install, so editing the sources, the dev dependencies or the tool settings
# in pyproject.toml reuses this layer (and the download). Wheels only: the image needs no compiler, and a
# dependency without a wheel fails here instead of compiling. pip and setuptools leave (nothing installs at run
# time), and so do the test suites some wheels ship.
FROM python:${PYTHON_VERSION}-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY --from=requirements /requirements.txt /src/requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --only-binary=:all: -r /src/requirements.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && find /opt/venv -type d -name tests -prune -exec rm -rf {} +

# ---- runtime: the virtualenv, the sources, the migrations, a non-root user --------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv \
    PATH=/opt/venv/bin:$PATH \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 ttsync \
 && useradd --system --uid 10001 --gid ttsync --home-dir /srv --no-create-home --shell /usr/sbin/nologin ttsync
COPY --from=deps /opt/venv /opt/venv
WORKDIR /srv
# owned by root and read-only for the service user: a compromised process cannot rewrite the code it runs
COPY alembic.ini ./
COPY migrations ./migrations
COPY jirasim ./jirasim
COPY workers ./workers
COPY app ./app
# compiled once here: the service user cannot write __pycache__, and every process would compile at start
RUN python -m compileall -q -j 0 app workers jirasim migrations
# numeric, so orchestrators can verify "runs as non-root" (Kubernetes' runAsNonRoot) without reading /etc/passwd
USER 10001:10001
# uvicorn reads UVICORN_HOST / UVICORN_PORT (and FORWARDED_ALLOW_IPS); the health check follows UVICORN_PORT.
# UVICORN_HTTP=h11: its parser refuses a request head over 16 KiB; httptools (the default) has no such limit
# (docs/security.md)
ENV UVICORN_HOST=0.0.0.0 UVICORN_PORT=8000 UVICORN_HTTP=h11
EXPOSE 8000
# liveness only (/readyz would mark the container unhealthy whenever PostgreSQL or Redis blips)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('UVICORN_PORT', '8000'), timeout=2).status != 200)"]
# behind a load balancer or reverse proxy, client address and scheme come from its X-Forwarded-* headers when it
# connects from an address in FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1 only; never `*` on an open port)
CMD ["uvicorn", "app.main:app", "--proxy-headers", "--no-access-log"]
