# mem0's own npm client (mem0ai) for the compatibility tests of the mem0 Platform dialect
# (tests/compat/, docs/mem0-compat.md): installed from the committed lockfile, quiet when current.

COMPAT_JS := tests/compat/js

$(COMPAT_JS)/node_modules/.package-lock.json: $(COMPAT_JS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 18+) is needed for mem0's npm client tests" >&2; exit 1; }
	cd $(COMPAT_JS) && npm ci --no-audit --no-fund --silent

.PHONY: compat-js
compat-js: $(COMPAT_JS)/node_modules/.package-lock.json ## Install mem0's npm client for tests/compat (npm ci from the lockfile)
