# System packages the tests need (Debian/Ubuntu names), installed by `make system-deps`, which
# `make test` runs first: only what is missing, with sudo when not root, saying what it installs.
# `make run` needs none of them (the embedded profile is pure Python).
#   redis-server                 rate limits across workers (tests/support/redis.py)
#   prometheus, -alertmanager    promtool/amtool checks and the monitoring proof
#   openjdk-17-jdk-headless, maven  the local Neo4j (ops/neo4j, make neo4j-up)
#   debootstrap, systemd-container, iproute2, openssh-client  the deploy test's throwaway hosts
#   caddy, pgbouncer             the front door and the transaction-pooler proof
#   chromium                     the console's browser tests
#   nodejs, npm                  the JavaScript SDK and mem0's npm client tests
#   curl                         scripts and the deploy test
SYSTEM_PACKAGES ?= redis-server prometheus prometheus-alertmanager openjdk-17-jdk-headless maven \
  debootstrap systemd-container iproute2 openssh-client caddy pgbouncer chromium curl
# Node.js: any installed node >= 18 with npm will do (Debian's nodejs/npm are installed only when absent).
NODE_PACKAGES ?= nodejs npm

.PHONY: system-deps
system-deps: ## Install the system packages the tests need (apt; only what is missing; sudo when not root)
	@command -v dpkg-query >/dev/null || { echo "system-deps: not a Debian/Ubuntu system; install: $(SYSTEM_PACKAGES)" >&2; exit 1; }
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing $(NODE_PACKAGES)"; fi; \
	if [ -z "$$missing" ]; then echo "system-deps: all present"; exit 0; fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	echo "system-deps: installing$$missing (apt-get$${sudo:+ with sudo})"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get update -q && $$sudo apt-get install -y -q --no-install-recommends $$missing
