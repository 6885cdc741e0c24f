# Memory service: one Makefile for developers, CI and operators.
# `make help` lists every target; each has a `## ` line saying what it does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

API_HOST ?= localhost
API_PORT ?= 8080
DATA_DIR ?= ./data
export API_HOST API_PORT DATA_DIR

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z0-9_-]+:.*?## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/memory-service: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

.PHONY: install
install: $(BIN)/memory-service ## Create .venv and install the service with its dev tools

.PHONY: run
run: install ## Serve the embedded profile on API_HOST:API_PORT (development keys enabled)
	APP_ENV=$${APP_ENV:-development} $(BIN)/memory-service serve --host $(API_HOST) --port $(API_PORT)

.PHONY: test
test: install ## Run the whole suite: lint, unit, API, integration, monitoring, deploy and load smoke
	$(MAKE) lint
	$(MAKE) monitoring-static
	$(BIN)/pytest -q tests --ignore=tests/deploy
	$(MAKE) test-deploy
	$(MAKE) loadtest

.PHONY: lint
lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: typecheck
typecheck: install ## mypy --strict with the pydantic plugin over service/ (settings in pyproject.toml)
	$(BIN)/mypy

.PHONY: fmt
fmt: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: docs
docs: install ## Regenerate docs/postman_collection.json from the OpenAPI document
	$(BIN)/python scripts/postman.py

.PHONY: bench
bench: install ## Benchmarks (JSON on stdout): add/search latency at 1k and 10k memories, limiter overhead
	@$(BIN)/python bench/run.py

.PHONY: bench-graph-boost
bench-graph-boost: install ## Measure the search entity boost on a small labelled set (JSON on stdout)
	@$(BIN)/python bench/graph_boost.py

-include mk/*.mk
