# Everything a fresh machine needs: Python 3.11 and this Makefile.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: embedded PostgreSQL + Redis under .data/, migrations, API on 127.0.0.1:8000, a worker, the JIRA simulator
run: $(STAMP)
	$(PY) -m devstack run

## make lint: ruff + mypy
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app workers jirasim devstack

## make test: lint, then the whole suite on real PostgreSQL and Redis that the test session starts itself
test: $(STAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

## make bench: benchmarks against real PostgreSQL, Redis and the simulator; writes docs/benchmarks.md
bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
