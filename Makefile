# Everything a fresh machine needs: Python 3.11 and this Makefile.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# podman, runc and a stand-in python:3.11-slim-bookworm base from Debian's packages (lives beside the checkout)
CONTAINER_BASE ?= $(firstword $(wildcard ../shared/tools/container-base /work/shared/tools/container-base))
IMAGE  ?= tt-jira-sync:latest
export CONTAINER_BASE

.PHONY: install run test lint unit guards bench clean browser image-tools image

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: embedded PostgreSQL + Redis under .data/, migrations, API on 127.0.0.1:8000, a worker, the JIRA simulator
run: $(STAMP)
	$(PY) -m devstack run

## make lint: ruff + mypy + the import contracts (what may import what: docs/architecture.md)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app workers jirasim devstack
	$(VENV)/bin/lint-imports --no-cache

## make browser: Debian's chromium for the dashboard browser test (Playwright drives it; no browser download).
## Installed only when missing and apt-get is usable as root; otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	      || echo "WARNING: could not install chromium: the dashboard browser test will be skipped"; \
	  else echo "WARNING: chromium missing and not installable here (needs root + apt): browser test skipped"; fi; }

## make image-tools: podman and the base image for the image tests (tests/image) and `make image`, via
## ../shared/tools/container-base (root + apt-get; about 1.5 minutes the first time, a second afterwards).
## Where that cannot run, the image tests skip and say why.
image-tools:
	@if [ "$$(id -u)" = 0 ] && [ -n "$(CONTAINER_BASE)" ] && command -v apt-get >/dev/null 2>&1; then \
	  bash "$(CONTAINER_BASE)" >/dev/null || echo "WARNING: $(CONTAINER_BASE) failed: the image tests will be skipped"; \
	elif ! command -v podman >/dev/null 2>&1; then \
	  echo "WARNING: podman missing, and installing it needs root, apt-get and ../shared/tools/container-base:" \
	    "the image tests will be skipped"; fi

## make image: build the production image ($(IMAGE)) from the Dockerfile with podman
image: image-tools
	podman $$( [ -n "$(CONTAINER_BASE)" ] && [ "$$(id -u)" = 0 ] && bash "$(CONTAINER_BASE)") build --pull=never \
	  --network host --format docker -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
	  -t $(IMAGE) .

## make test: lint, then the whole suite on real PostgreSQL and Redis that the test session starts itself
## (the image tests, marker `image`, build the production image with podman: see docs/operations.md)
test: $(STAMP) browser image-tools lint
	$(VENV)/bin/pytest -q -rs -p no:cacheprovider --durations=15

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

## make guards: break each guarded behaviour on purpose (the feed's order, rotation's compare-and-set, overlapping
## poll windows, the polling loop, one request per change, stale changes, 429 handling), show its tests fail, restore
## (tests/break_guards.py; about five minutes, not part of make test)
guards: $(STAMP)
	$(PY) -m tests.break_guards $(GUARDS)

## make bench: benchmarks against real PostgreSQL, Redis and the simulator; writes docs/benchmarks.md and .png
## (BENCH_ARGS=--quick for a smoke run with small sizes; about 9 minutes in full on 2 cores)
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache test-output
