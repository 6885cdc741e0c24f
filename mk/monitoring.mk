# Monitoring bundle: Prometheus configuration, rules and their unit tests, Alertmanager, Grafana
# dashboards as code, and the proof that every dashboard and recording-rule query returns data
# from a real Prometheus scraping the real service. promtool and amtool are Debian's
# (packages prometheus, prometheus-alertmanager; .ci/run installs them).

PROMTOOL ?= promtool
AMTOOL ?= amtool
MONITORING_PROM := ops/prometheus
MONITORING_WEBHOOK_EXAMPLE := https://hooks.example.invalid/memory-service
MONITORING_TESTS := tests/ops/test_monitoring_rules.py tests/ops/test_monitoring_config.py \
  tests/ops/test_monitoring_dashboards.py tests/integration/test_monitoring_proof.py

.PHONY: dashboards
dashboards: install ## Regenerate ops/grafana/dashboards/*.json from ops/grafana/build.py
	$(BIN)/python ops/grafana/build.py

.PHONY: monitoring-check
monitoring-check: monitoring-static ## Check Prometheus/Alertmanager configs, rule unit tests, dashboards; prove every query returns data
	$(BIN)/pytest -q $(MONITORING_TESTS)

.PHONY: monitoring-static
monitoring-static: install ## promtool/amtool checks, rule unit tests and the dashboard regeneration check (no service)
	$(PROMTOOL) check config --syntax-only $(MONITORING_PROM)/prometheus.yml
	@# Full check too: the scrape key lives in /run/secrets in the container, so point a copy at a dummy.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  cp -r $(MONITORING_PROM)/prometheus.yml $(MONITORING_PROM)/rules "$$tmp"/ && echo dummy > "$$tmp/key" && \
	  sed -i "s|credentials_file: /run/secrets/memory_admin_key|credentials_file: $$tmp/key|" "$$tmp/prometheus.yml" && \
	  $(PROMTOOL) check config "$$tmp/prometheus.yml"
	$(PROMTOOL) check rules $(MONITORING_PROM)/rules/*.yml
	$(PROMTOOL) test rules $(MONITORING_PROM)/tests/*.yml
	@# alertmanager.yml is a Jinja template (webhook URL from the deployment): check it rendered both ways.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/python $(MONITORING_PROM)/render_alertmanager.py --webhook-url $(MONITORING_WEBHOOK_EXAMPLE) > "$$tmp/with-webhook.yml" && \
	  $(BIN)/python $(MONITORING_PROM)/render_alertmanager.py > "$$tmp/without-webhook.yml" && \
	  $(AMTOOL) check-config "$$tmp/with-webhook.yml" "$$tmp/without-webhook.yml" && \
	  $(AMTOOL) config routes test --config.file="$$tmp/with-webhook.yml" --verify.receivers=webhook-critical severity=critical && \
	  $(AMTOOL) config routes test --config.file="$$tmp/with-webhook.yml" --verify.receivers=webhook-warning severity=warning && \
	  $(AMTOOL) config routes test --config.file="$$tmp/without-webhook.yml" --verify.receivers=null severity=critical
	$(BIN)/python ops/grafana/build.py --check
