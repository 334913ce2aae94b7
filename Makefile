# cadence — the two commands are `make demo` and `make test`; everything they need
# (virtualenv, Kafka jars, X test tools, deploy-check tools) is set up on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CADENCE := $(VENV)/bin/cadence
STAMP := $(VENV)/.installed
KAFKA_LOCAL := python3 deploy/local/kafka_local.py
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: venv demo test test-fast lint typecheck unit integration dataset bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

## The live demo: local Kafka (started and stopped here unless one is running), a worker,
## 20 simulated people, one account taken over part-way; verdicts in a live table. Ctrl-C ends it.
demo: venv
	@started=0; \
	if ! $(KAFKA_LOCAL) status >/dev/null 2>&1; then $(KAFKA_LOCAL) up && started=1; fi; \
	trap 'if [ $$started = 1 ]; then $(KAFKA_LOCAL) down; fi' EXIT; \
	$(CADENCE) demo $(DEMO_ARGS)

## Everything CI runs: lint, the deployment checks, unit + integration + dataset tests.
## No broker (java missing) fails the run rather than skip every integration test.
test: venv lint typecheck x11-tools deploy-check
	CADENCE_REQUIRE_KAFKA=$${CADENCE_REQUIRE_KAFKA:-1} $(PY) -m pytest -q --durations=15 $(PYTEST_ARGS) tests collectors profiles streams --doctest-modules

## Quick loop while developing: no broker, no X, no deploy tools.
test-fast: venv lint
	$(PY) -m pytest -q -m "not integration and not slow and not x11 and not dataset" tests collectors profiles streams --doctest-modules

lint: venv
	$(VENV)/bin/ruff check collectors streams profiles tests bench deploy
	$(VENV)/bin/ruff format --check collectors streams profiles tests bench deploy

typecheck: venv
	$(VENV)/bin/mypy collectors streams profiles

unit: venv
	$(PY) -m pytest -q tests/unit

integration: venv x11-tools
	$(PY) -m pytest -q tests/integration

dataset: venv
	$(PY) -m pytest -q tests/dataset

## Benchmarks (not tests): pipeline throughput/latency, collector footprint. Writes bench/results/.
bench: venv
	$(PY) bench/run.py

include deploy/local/kafka.mk
include collectors/x11.mk
include deploy/deploy.mk

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
