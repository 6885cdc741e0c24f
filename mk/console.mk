# The web console (/console, docs/console.md): browser tests in Debian's headless chromium
# (make system-deps installs it) driven by Playwright's Python package, which never downloads a
# browser here. `make console-screenshots` refreshes the screenshots docs/console.md embeds.
.PHONY: test-console
test-console: install ## Browser tests of the web console (headless chromium against a real service)
	$(BIN)/pytest -q tests/console

.PHONY: console-screenshots
console-screenshots: install ## Run the console's browser tests, saving their screenshots into docs/img/console/
	CONSOLE_SCREENSHOT_DIR=$(CURDIR)/docs/img/console $(BIN)/pytest -q tests/console
