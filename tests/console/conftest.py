"""The console's browser tests: one real service and one headless Chromium for the whole package.

The browser is Debian's `chromium` (/usr/bin/chromium, `make system-deps`) driven by Playwright's
Python package; Playwright never downloads a browser here. Each test gets fresh tenants (keys made
through the admin API) and a fresh browser context (no cookies), and every page records what the
console must never produce: JavaScript dialogs, console errors (CSP violations are console
errors), uncaught exceptions.

Screenshots go to CONSOLE_SCREENSHOT_DIR (`make console-screenshots` sets docs/img/console), or
to a temporary directory.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Playwright, sync_playwright

from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GRAFANA_URL = "http://127.0.0.1:9/grafana/d/memory-service"  # linked, never fetched
DESKTOP = {"width": 1100, "height": 760}
TIMEOUT_MS = 60_000  # for a step of a page, generous: the machine may be busy (a search embeds the query)
START_TIMEOUT = 240.0  # a first start creates the embedded Postgres: slow on a busy machine
_FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of \d+ \(.*\)")


@pytest.fixture(scope="package")
def console_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        tmp_path_factory.mktemp("console-service"),
        {
            "RATE_LIMIT_PER_MINUTE": "6000",
            "RATE_LIMIT_BURST": "1000",
            "GRAFANA_URL": GRAFANA_URL,
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the test's receiver listens on loopback
        },
    )
    try:
        service.start(timeout=START_TIMEOUT)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("CONSOLE_SCREENSHOT_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class Tenant:
    """A fresh tenant: its name, a user key and an admin key, and API clients for both."""

    name: str
    user_key: str
    admin_key: str
    api: httpx.Client
    admin_api: httpx.Client

    def add(self, user_id: str, content: str, metadata: dict[str, object] | None = None) -> str:
        body: dict[str, object] = {"messages": [{"role": "user", "content": content}], "user_id": user_id}
        if metadata:
            body["metadata"] = metadata
        response = self.api.post("/v1/memories", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["memories"][0]["id"])


@pytest.fixture
def new_tenant(console_service: ServiceProcess) -> Iterator[type[Tenant]]:
    """Call it to make a tenant (several per test when a test needs two)."""
    clients: list[httpx.Client] = []

    def make(prefix: str = "console") -> Tenant:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with console_service.client(ADMIN_KEY) as bootstrap:
            user_key = new_tenant_key(bootstrap, name)
            admin_key = new_tenant_key(bootstrap, name, role="admin")
        api, admin_api = console_service.client(user_key), console_service.client(admin_key)
        clients.extend([api, admin_api])
        return Tenant(name, user_key, admin_key, api, admin_api)

    yield make  # type: ignore[misc]
    for client in clients:
        client.close()


@dataclass
class Watched:
    """A page and what it must never show: dialogs, console errors, uncaught exceptions."""

    page: Page
    base: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"{self.base}/console{path}"

    def goto(self, path: str) -> int:
        response = self.page.goto(self.url(path))
        assert response is not None
        return response.status

    def sign_in(self, key: str) -> None:
        """Type the key into the sign-in form and press Enter, as a person does."""
        self.goto("/login")
        self.page.fill("#api_key", key)
        self.page.press("#api_key", "Enter")
        self.page.wait_for_url(re.compile(r".*/console/users$"))

    def csrf_token(self) -> str:
        return str(self.page.locator("input[name=csrf_token]").first.get_attribute("value"))

    def assert_quiet(self) -> None:
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.errors == [], f"console errors: {self.errors}"


def watch(context: BrowserContext, base: str) -> Watched:
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page, base)

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Chromium reports a page answered with 4xx (a 404 page, a refused form) as a failed load
        # of that document: expected here, unlike a failed script, style or image.
        if _FAILED_LOAD.fullmatch(message.text) and message.location.get("url") in watched.documents:
            return
        watched.errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on(
        "request",
        lambda request: watched.documents.add(request.url) if request.resource_type == "document" else None,
    )
    return watched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Asia/Tokyo")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def console(context: BrowserContext, console_service: ServiceProcess) -> Watched:
    return watch(context, console_service.url)
