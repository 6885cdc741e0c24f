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

# The lockfiles pin every package with its hashes (`make lock` regenerates them from pyproject.toml):
# a fresh machine installs exactly what CI tested.
$(BIN)/memory-service: pyproject.toml requirements-dev.lock sdk/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . -e sdk/python
	@touch $@

.PHONY: install
install: $(BIN)/memory-service ## Create .venv and install the service with its dev tools and sdk/python (editable)

.PHONY: run
run: install ## Serve the embedded profile on API_HOST:API_PORT (development keys enabled)
	APP_ENV=$${APP_ENV:-development} $(BIN)/memory-service serve --host $(API_HOST) --port $(API_PORT)

.PHONY: lock
lock: install ## Regenerate requirements.lock (runtime) and requirements-dev.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header \
	  -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock --universal --python-version 3.11 \
	  --generate-hashes --no-header -o requirements-dev.lock -q

.PHONY: check
check: install ## Fast loop (< 1 min, no root, no servers): lint, import rules, types, unit tests
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

.PHONY: test
test: install system-deps sdk-js-build compat-js ## Run the whole suite: lint, unit, API, integration, SDKs, monitoring, deploy and load smoke
	$(MAKE) lint
	$(MAKE) monitoring-static
	$(BIN)/pytest -q tests --ignore=tests/deploy
	$(MAKE) test-deploy
	$(MAKE) loadtest

.PHONY: lint
lint: install ## ruff check, ruff format --check, the import rules, mypy --strict on service/ and sdk/python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory imports
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory sdk-typecheck

.PHONY: imports
imports: install ## Import rules (.importlinter): layers point down, no web framework below the API
	@cd service && PYTHONPATH=. ../$(BIN)/lint-imports --no-cache ../.importlinter

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
bench: install ## Every benchmark in one run, one JSON on stdout (bench/all.py): model, scale, throughput, latency; BENCH_ONLY picks parts
	@$(BIN)/python bench/all.py

.PHONY: bench-latency
bench-latency: install ## Add/search latency at 1k and 10k memories, webhook cost of an add, search through MCP beside REST, limiter overhead (JSON on stdout)
	@$(BIN)/python bench/run.py

.PHONY: bench-platform
bench-platform: install ## Only the mem0 Platform dialect's search and add beside the contract's at 1k memories (JSON on stdout)
	@$(BIN)/python bench/run.py --platform-only

.PHONY: bench-throughput
bench-throughput: install ## Issue 20 (JSON on stdout): searches/s, p50/p95/p99 at 1/8/32 clients (1 and 2 workers, mem0 pattern), adds/s, hit path, CPU per search
	@$(BIN)/python bench/throughput.py

.PHONY: bench-model
bench-model: install ## Issue 20 (JSON on stdout): the embedding model alone, CPU per query at batch 1/4/16/32 and its operator split
	@$(BIN)/python bench/model.py

.PHONY: bench-scale
bench-scale: install ## Issue 20 (JSON on stdout): bulk-load 10k/100k/1M memories; search p50/p95, recall@5 against an exact scan, index sizes, the exact/HNSW crossover
	@$(BIN)/python bench/scale.py

.PHONY: bench-batch-wait
bench-batch-wait: install ## Issue 20 (JSON on stdout): EMBEDDER_MAX_WAIT_MS 0/2/5 side by side, two workers, 32 clients, interleaved
	@$(BIN)/python bench/batch_wait.py

.PHONY: bench-extractor
bench-extractor: install ## Entity extraction time against input length, capped and uncapped (JSON on stdout)
	@$(BIN)/python bench/extractor.py

.PHONY: bench-graph-boost
bench-graph-boost: install ## Measure the search entity boost on a small labelled set (JSON on stdout)
	@$(BIN)/python bench/graph_boost.py

-include mk/*.mk
