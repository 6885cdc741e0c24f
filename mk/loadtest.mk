# Locust suite (loadtests/, docs/capacity.md): smoke with SLOs and rate-limit probes, step-load capacity.
# Without LOCUST_HOST the targets start their own server (embedded profile, temporary DATA_DIR,
# free port, development keys); with it they test that server (LOADTEST_ADMIN_KEY: an admin key).

SEARCH_P95_MS ?= 250
MAX_ERROR_RATIO ?= 0.01
LOCUST_USERS ?= 20
LOCUST_RUN_TIME ?= 75s
CAPACITY_WORKERS ?= 1
STEP_USERS ?= 20
STEP_SECONDS ?= 30
STEP_MAX_USERS ?= 400
LOADTEST_ENV = SEARCH_P95_MS=$(SEARCH_P95_MS) MAX_ERROR_RATIO=$(MAX_ERROR_RATIO) \
	LOCUST_USERS=$(LOCUST_USERS) LOCUST_RUN_TIME=$(LOCUST_RUN_TIME) CAPACITY_WORKERS=$(CAPACITY_WORKERS) \
	STEP_USERS=$(STEP_USERS) STEP_SECONDS=$(STEP_SECONDS) STEP_MAX_USERS=$(STEP_MAX_USERS) \
	$(if $(LOCUST_HOST),LOCUST_HOST=$(LOCUST_HOST))

.PHONY: loadtest
loadtest: install ## Locust smoke (~75 s): mixed workload + rate-limit probes; fails on an SLO (SEARCH_P95_MS, MAX_ERROR_RATIO)
	$(LOADTEST_ENV) $(BIN)/python -m loadtests.run smoke

.PHONY: capacity
capacity: install ## Step-load capacity (CAPACITY_WORKERS=1|4): CSV, HTML, capacity.json and PNG in loadtests/reports/
	$(LOADTEST_ENV) $(BIN)/python -m loadtests.run capacity

.PHONY: capacity-plot
capacity-plot: install ## Plot both capacity runs into docs/img/capacity.png (after make capacity with 1 and 4 workers)
	$(BIN)/python -m loadtests.plot loadtests/reports/capacity-1w/capacity.json loadtests/reports/capacity-4w/capacity.json \
		-o docs/img/capacity.png
