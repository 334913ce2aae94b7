# cadence — the two commands are `make demo` and `make test`; everything else they need
# (virtualenv, Kafka jars, X test tools) is set up on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CADENCE := $(VENV)/bin/cadence
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit integration bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

lint: venv
	$(VENV)/bin/ruff check collectors streams profiles tests bench
	$(VENV)/bin/ruff format --check collectors streams profiles tests bench

typecheck: venv
	$(VENV)/bin/mypy collectors streams profiles

-include deploy/local/kafka.mk

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
