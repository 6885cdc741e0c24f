# The fault suite (issue 19; tests/chaos): Postgres killed and stalled, Redis and Neo4j killed, the
# service killed, workers recycled and reloaded (SIGHUP), each under write load, counting
# acknowledged writes that are missing and refused writes that are stored (both must be 0) and the
# time to recover without a restart. `make test` runs it once per fault (CHAOS_SCALE=1); this
# target repeats each fault CHAOS_SCALE times and prints the figures (JSON lines).

CHAOS_SCALE ?= 5
CHAOS_REPORT ?= $(CURDIR)/chaos-report.jsonl

.PHONY: chaos
chaos: install ## Fault suite under write load, CHAOS_SCALE (5) rounds per fault; prints the figures as JSON lines
	@rm -f "$(CHAOS_REPORT)"
	@CHAOS_SCALE=$(CHAOS_SCALE) CHAOS_REPORT="$(CHAOS_REPORT)" $(BIN)/pytest -q -p no:cacheprovider tests/chaos; \
	  status=$$?; echo "--- chaos figures ($(CHAOS_REPORT))"; cat "$(CHAOS_REPORT)" 2>/dev/null; exit $$status
