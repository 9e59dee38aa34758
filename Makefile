# lottrace: `make run` starts the platform, `make test` runs the tests. Both set up
# the virtualenv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Two test processes: most tests wait on brokers, databases and service processes, so two
# keep both cores busy. A file's tests stay in one process, in order. The API fuzzing runs on its own afterwards: schemathesis
# runs a schema's operations as subtests, which an xdist worker reports but never runs.
PYTEST_WORKERS ?= -n 2 --dist loadfile
FUZZ   := tests/integration/test_api_fuzz.py
PYTEST := PATH="$(CURDIR)/$(VENV)/tools/bin:$$PATH" $(BIN)/python -m pytest -p no:cacheprovider

.DEFAULT_GOAL := help
.PHONY: help install tools run test test-unit test-integration test-e2e chaos lint format contracts bench bench-quick bench-scale demo clean

help:
	@echo "make run          start broker, PostgreSQL and the four services (Ctrl-C stops)"
	@echo "make test         all tests: unit, contract, integration, end to end"
	@echo "make tools        promtool and kubectl for the tests (make test runs it)"
	@echo "make lint         ruff and mypy"
	@echo "make contracts    regenerate docs/contracts (AsyncAPI, JSON Schemas)"
	@echo "make bench        the benchmark (bench-quick: a short one)"
	@echo "make bench-scale  trace and allocation cost on 100k, 1M and 10M lines of history"
	@echo "make chaos        fault injection under load; writes docs/reliability.md"
	@echo "make demo         the orange-juice recall story against a running 'make run'"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# promtool and kubectl (for kustomize), which some tests run: into $(VENV)/tools/bin.
tools:
	bash .ci/install-tools

run: $(STAMP)
	$(BIN)/python -m lottrace dev

test: $(STAMP) tools
	$(PYTEST) $(PYTEST_WORKERS) --ignore=$(FUZZ)
	$(PYTEST) $(FUZZ)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit tests/contract

test-integration: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/integration

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services lottrace tests bench

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

contracts: $(STAMP)
	$(BIN)/python -m lottrace contracts

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# About 9 minutes (20:38-20:47 on 2026-12-06) and 20 GB of disk: the 10M-line history goes into recall and inventory.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scaling --scale

demo: $(STAMP)
	$(BIN)/python -m lottrace demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
