# Local Neo4j Community 5.26 for tests and CI: the real engine, embedded by the Maven-built launcher
# in ops/neo4j (see ops/neo4j/README.md). Bolt on 127.0.0.1 only, auth on, data kept across restarts.
# Start and stop are serialised with flock, so concurrent callers (parallel test runs) do not race.

NEO4J_PORT ?= 7687
NEO4J_PASSWORD ?= memory-test-password
NEO4J_RUN ?= $(CURDIR)/ops/neo4j/run
NEO4J_DATA ?= $(NEO4J_RUN)/data
NEO4J_HEAP ?= 512m
NEO4J_PAGECACHE ?= 128m
NEO4J_START_TIMEOUT ?= 90
NEO4J_STOP_TIMEOUT ?= 60
NEO4J_JAVA ?= java
NEO4J_MVN ?= mvn
NEO4J_JAVA_OPTS ?= -Xms64m -Xmx$(NEO4J_HEAP) -XX:MaxDirectMemorySize=128m -XX:+UseSerialGC \
  -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow -Djdk.nio.maxCachedBufferSize=1024 \
  -Dio.netty.tryReflectionSetAccessible=true -Dlog4j2.disable.jmx=true

NEO4J_SRC := ops/neo4j
NEO4J_JAR := $(CURDIR)/$(NEO4J_SRC)/target/neo4j-launcher.jar
NEO4J_STAMP := $(NEO4J_SRC)/target/.built
NEO4J_SOURCES := $(NEO4J_SRC)/pom.xml $(shell find $(NEO4J_SRC)/src -type f 2>/dev/null)
NEO4J_PID := $(NEO4J_RUN)/neo4j.pid
NEO4J_READY := $(NEO4J_RUN)/neo4j.ready
NEO4J_LOG := $(NEO4J_RUN)/neo4j.log
NEO4J_URI := bolt://127.0.0.1:$(NEO4J_PORT)
NEO4J_MVN_FLAGS := -B -q -Dstyle.color=never

# Shell prelude for the recipes: take the lock on fd 9 (closed for the JVM, so it never holds it),
# and neo4j_pid, which prints the launcher's pid only if that process is alive and is our launcher.
NEO4J_SH = mkdir -p "$(NEO4J_RUN)"; exec 9>>"$(NEO4J_RUN)/.lock"; \
  flock -w 300 9 || { echo "neo4j: $(NEO4J_RUN)/.lock is busy" >&2; exit 1; }; \
  neo4j_pid() { local p; p=$$(cat "$(NEO4J_PID)" 2>/dev/null) && [ -n "$$p" ] && kill -0 "$$p" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$$p/cmdline" 2>/dev/null | grep -q neo4j-launcher && echo "$$p"; };

$(NEO4J_STAMP): $(NEO4J_SOURCES)
	@echo "Building the Neo4j launcher (Maven; a first build downloads about 130 MB into ~/.m2)"
	@mkdir -p "$(NEO4J_RUN)"; exec 9>>"$(NEO4J_RUN)/.build-lock"; flock -w 600 9; \
	cd $(NEO4J_SRC) && { $(NEO4J_MVN) $(NEO4J_MVN_FLAGS) -o package >/dev/null 2>&1 \
	  || $(NEO4J_MVN) $(NEO4J_MVN_FLAGS) package; }
	@touch $@

.PHONY: neo4j-build
neo4j-build: $(NEO4J_STAMP) ## Build the Neo4j launcher with Maven into ops/neo4j/target (skipped when up to date)
	@:

.PHONY: neo4j-up
neo4j-up: export NEO4J_PASSWORD := $(NEO4J_PASSWORD)
neo4j-up: ## Start the local Neo4j in the background if not running, wait until Bolt is ready, print its URI
	@$(NEO4J_SH) \
	if pid=$$(neo4j_pid); then \
	  if [ -s "$(NEO4J_READY)" ]; then \
	    uri=$$(cat "$(NEO4J_READY)"); \
	    if [ "$$uri" != "$(NEO4J_URI)" ]; then \
	      echo "Neo4j already runs at $$uri, not $(NEO4J_URI): make neo4j-down first" >&2; exit 1; fi; \
	    echo "Neo4j already running (pid $$pid): $$uri (user neo4j)"; exit 0; \
	  fi; \
	  echo "Neo4j is starting (pid $$pid); waiting"; \
	else \
	  if (exec 3<>/dev/tcp/127.0.0.1/$(NEO4J_PORT)) 2>/dev/null; then \
	    echo "Port $(NEO4J_PORT) is taken by another process; set NEO4J_PORT" >&2; exit 1; fi; \
	  $(MAKE) --no-print-directory neo4j-build 9>&- || exit 1; \
	  rm -f "$(NEO4J_PID)" "$(NEO4J_READY)"; mkdir -p "$(NEO4J_DATA)"; \
	  echo "Starting Neo4j (data $(NEO4J_DATA), log $(NEO4J_LOG))"; \
	  setsid nohup $(NEO4J_JAVA) $(NEO4J_JAVA_OPTS) -jar "$(NEO4J_JAR)" --data "$(NEO4J_DATA)" \
	    --port $(NEO4J_PORT) --pagecache $(NEO4J_PAGECACHE) --pid-file "$(NEO4J_PID)" \
	    --ready-file "$(NEO4J_READY)" --log-file "$(NEO4J_LOG)" </dev/null >>"$(NEO4J_LOG)" 2>&1 9>&- & \
	  pid=$$!; \
	fi; \
	start=$$(date +%s); \
	until [ -s "$(NEO4J_READY)" ]; do \
	  if ! kill -0 "$$pid" 2>/dev/null; then \
	    echo "Neo4j exited while starting; the end of $(NEO4J_LOG):" >&2; tail -n 25 "$(NEO4J_LOG)" >&2; exit 1; fi; \
	  if [ $$(( $$(date +%s) - start )) -ge $(NEO4J_START_TIMEOUT) ]; then \
	    echo "Neo4j not ready after $(NEO4J_START_TIMEOUT) s (still running as pid $$pid; see $(NEO4J_LOG))" >&2; \
	    exit 1; fi; \
	  sleep 0.25; \
	done; \
	(exec 3<>/dev/tcp/127.0.0.1/$(NEO4J_PORT)) 2>/dev/null \
	  || { echo "Neo4j says ready but $(NEO4J_URI) refuses connections" >&2; exit 1; }; \
	echo "Neo4j up in $$(( $$(date +%s) - start )) s (pid $$(cat "$(NEO4J_PID)")): $$(cat "$(NEO4J_READY)") (user neo4j)"

.PHONY: neo4j-down
neo4j-down: ## Stop the local Neo4j (SIGTERM via its pid file, waits for a clean exit); fine if not running
	@$(NEO4J_SH) \
	if ! pid=$$(neo4j_pid); then \
	  rm -f "$(NEO4J_PID)" "$(NEO4J_READY)"; echo "Neo4j is not running"; exit 0; fi; \
	echo "Stopping Neo4j (pid $$pid)"; kill -TERM "$$pid"; start=$$(date +%s); \
	while kill -0 "$$pid" 2>/dev/null; do \
	  if [ $$(( $$(date +%s) - start )) -ge $(NEO4J_STOP_TIMEOUT) ]; then \
	    echo "Neo4j did not stop within $(NEO4J_STOP_TIMEOUT) s; killing it (next start recovers)" >&2; \
	    kill -KILL "$$pid" 2>/dev/null; sleep 1; break; fi; \
	  sleep 0.2; \
	done; \
	rm -f "$(NEO4J_PID)" "$(NEO4J_READY)"; echo "Neo4j stopped in $$(( $$(date +%s) - start )) s"

.PHONY: neo4j-status
neo4j-status: ## Say whether the local Neo4j runs, with its pid, Bolt URI and resident memory
	@$(NEO4J_SH) \
	if pid=$$(neo4j_pid); then \
	  echo "Neo4j running (pid $$pid): $$(cat "$(NEO4J_READY)" 2>/dev/null || echo starting)," \
	    "RSS $$(awk '/^VmRSS/ {printf "%d MiB", $$2 / 1024}' /proc/$$pid/status)"; \
	else echo "Neo4j is not running"; fi

.PHONY: neo4j-clean
neo4j-clean: neo4j-down ## Stop the local Neo4j and delete its data and log (NEO4J_DATA, NEO4J_LOG)
	@case "$(NEO4J_DATA)" in ""|/) echo "refusing to delete '$(NEO4J_DATA)'" >&2; exit 1;; esac; \
	rm -rf "$(NEO4J_DATA)" "$(NEO4J_LOG)"; echo "Deleted $(NEO4J_DATA) and $(NEO4J_LOG)"
