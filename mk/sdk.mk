# Client SDKs (sdk/python: mem0-client, sdk/js: @mem0/client). `make install` installs the Python
# one (editable) into the venv; the JS build is a prerequisite of `make test` (quiet when current).

SDK_JS := sdk/js
SDK_JS_SOURCES := $(wildcard $(SDK_JS)/src/*.ts) $(wildcard $(SDK_JS)/tsconfig*.json) $(SDK_JS)/package.json
SDK_DIST ?= dist/sdk

$(SDK_JS)/node_modules/.package-lock.json: $(SDK_JS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 18+) is needed to build sdk/js" >&2; exit 1; }
	cd $(SDK_JS) && npm ci --no-audit --no-fund --silent

$(SDK_JS)/dist/esm/index.js: $(SDK_JS)/node_modules/.package-lock.json $(SDK_JS_SOURCES)
	cd $(SDK_JS) && npm run --silent build

.PHONY: sdk-js-build
sdk-js-build: $(SDK_JS)/dist/esm/index.js ## Build sdk/js (npm ci from the lockfile, tsc to dist/esm and dist/cjs)

.PHONY: sdk
sdk: install sdk-js-build ## Build both SDKs into dist/sdk: the npm tarball (npm pack), the Python wheel and sdist
	@mkdir -p $(SDK_DIST)
	cd $(SDK_JS) && npm pack --silent --pack-destination $(abspath $(SDK_DIST))
	$(BIN)/uv build -q --sdist --wheel --out-dir $(SDK_DIST) sdk/python
	@ls -1 $(SDK_DIST)

.PHONY: sdk-typecheck
sdk-typecheck: install sdk-js-build ## mypy --strict on sdk/python (tsc --strict runs in the JS build)
	cd sdk/python && $(abspath $(BIN))/mypy src/mem0_client
