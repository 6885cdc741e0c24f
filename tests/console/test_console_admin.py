"""The console with an admin key, in a real browser: API keys (create, shown once, copy, revoke),
rate limits, the health panel; and what a user key may not do there."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx

from tests.console.conftest import GRAFANA_URL, Tenant, Watched
from tests.support.server import ServiceProcess, free_port


def test_an_admin_creates_copies_and_revokes_a_key(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess, screenshots: Path
) -> None:
    t = new_tenant()
    console.sign_in(t.admin_key)
    page = console.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_service.url)
    page.click("nav >> text=API keys")
    page.wait_for_url(re.compile(r".*/admin/keys$"))
    listed = t.admin_api.get("/v1/admin/keys", params={"tenant": t.name}).json()["data"]["keys"]
    assert page.locator("table.keys tbody tr").count() == len(listed) == 2
    assert sorted(page.locator("table.keys tbody td:nth-child(3)").all_inner_texts()) == ["admin", "user"]

    page.fill("#name", "nightly-ingest")
    page.select_option("#role", "user")
    page.fill("#rate_limit", "7")
    page.click("button:has-text('Create key')")
    page.wait_for_selector("#new-key")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("m0sk_")
    facts = page.locator("dl.facts").inner_text()
    assert "7 requests per minute" in facts
    assert t.name in facts
    page.screenshot(path=str(screenshots / "key-created.png"), mask=[page.locator("#new-key")], mask_color="#c9d1da")
    copy = page.locator("button[data-copy]")
    assert copy.is_visible()
    copy.click()
    # A locator wait, not wait_for_function: the console's CSP (no 'unsafe-eval') refuses a string
    # predicate whenever Playwright has to poll it.
    page.locator("button[data-copy]", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key

    # The new key works with its own limit, in this tenant.
    with httpx.Client(base_url=console_service.url, headers={"Authorization": f"Bearer {key}"}) as client:
        status = client.get("/v1/status")
        assert status.status_code == 200
        assert status.json()["data"]["tenant"] == t.name
        assert status.headers["x-ratelimit-limit"] == "7"

    # Listed afterwards with its limit, never with the key itself.
    page.click("text=Back to the keys")
    page.wait_for_url(re.compile(r".*/admin/keys$"))
    row = page.locator("table.keys tbody tr", has_text="nightly-ingest")
    assert row.locator("td").nth(3).inner_text() == "7"
    assert key not in page.content()
    page.screenshot(path=str(screenshots / "keys.png"))

    row.locator("button:has-text('Revoke')").click()
    page.wait_for_url(re.compile(r".*notice=key-revoked$"))
    row = page.locator("table.keys tbody tr", has_text="nightly-ingest")
    assert "revoked" in row.locator("td").last.inner_text()
    with httpx.Client(base_url=console_service.url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/v1/status").status_code == 401

    # A bad limit: the form does not let it through, and the server explains it and creates nothing.
    page.fill("#rate_limit", "0")
    assert page.locator("#rate_limit").evaluate("input => input.validity.valid") is False
    refused = page.request.post(
        console.url("/admin/keys"),
        form={"csrf_token": console.csrf_token(), "name": "bad-limit", "role": "user", "rate_limit": "0"},
        headers={"Origin": console_service.url},
    )
    assert refused.status == 400
    assert "1 or more" in refused.text()
    after = t.admin_api.get("/v1/admin/keys", params={"tenant": t.name, "include_revoked": "true"}).json()["data"]
    assert sorted(k["name"] or "" for k in after["keys"]) == ["", "", "nightly-ingest"]
    console.assert_quiet()


def test_admin_pages_show_only_the_keys_own_tenant(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    ours, theirs = new_tenant("ours"), new_tenant("theirs")
    their_keys = theirs.admin_api.get("/v1/admin/keys", params={"tenant": theirs.name}).json()["data"]["keys"]
    console.sign_in(ours.admin_key)
    console.goto("/admin/keys")
    page = console.page
    shown = page.locator("table.keys tbody tr").evaluate_all("rows => rows.map(r => r.dataset.keyId)")
    ours_listed = ours.admin_api.get("/v1/admin/keys", params={"tenant": ours.name}).json()["data"]["keys"]
    assert sorted(shown) == sorted(k["id"] for k in ours_listed)
    assert not set(shown) & {k["id"] for k in their_keys}

    revoke = page.request.post(
        console.url(f"/admin/keys/{their_keys[0]['id']}/revoke"),
        form={"csrf_token": console.csrf_token()},
        headers={"Origin": console_service.url},
    )
    assert revoke.status == 404
    with httpx.Client(base_url=console_service.url, headers={"Authorization": f"Bearer {theirs.user_key}"}) as c:
        assert c.get("/v1/status").status_code == 200
    console.assert_quiet()


def test_the_health_panel(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess, screenshots: Path
) -> None:
    t = new_tenant()
    console.sign_in(t.admin_key)
    page = console.page
    page.click("nav >> text=Health")
    page.wait_for_url(re.compile(r".*/admin/health$"))
    health = httpx.get(f"{console_service.url}/health").json()["data"]
    facts = page.locator("dl.facts").first.inner_text()
    assert health["version"] in facts
    rows = page.locator("table.deps tbody tr")
    shown = {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
             for i in range(rows.count())}  # fmt: skip
    assert {name: ("up" if dep["up"] else "down") for name, dep in health["dependencies"].items()} == {
        name: state.split()[0] for name, state in shown.items()
    }
    assert page.locator("a:has-text('Grafana')").get_attribute("href") == GRAFANA_URL
    queues = page.locator("table.queues tbody tr td:nth-child(1)").all_inner_texts()
    assert queues == ["Asynchronous adds queued", "Asynchronous adds running"]
    page.screenshot(path=str(screenshots / "health.png"))
    console.assert_quiet()


def test_a_user_key_cannot_open_the_admin_pages(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    t = new_tenant()
    console.sign_in(t.user_key)
    page = console.page
    assert page.locator("nav >> text=API keys").count() == 0
    assert console.goto("/admin/keys") == 403
    assert console.goto("/admin/health") == 403
    created = page.request.post(
        console.url("/admin/keys"),
        form={"csrf_token": console.csrf_token(), "role": "admin", "name": "escalate"},
        headers={"Origin": console_service.url},
    )
    assert created.status == 403
    keys = t.admin_api.get("/v1/admin/keys", params={"tenant": t.name}).json()["data"]["keys"]
    assert "escalate" not in [k["name"] for k in keys]
    console.assert_quiet()


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((str(self.headers.get("webhook-id")), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _delivery_states(console: Watched, webhook_id: str, expected: int) -> list[list[str]]:
    """The deliveries table (event, state), reloaded until `expected` rows are all finished."""
    deadline = time.monotonic() + 60
    while True:
        console.goto(f"/admin/webhooks/{webhook_id}")
        rows = console.page.locator("table.deliveries tbody tr")
        states = [rows.nth(i).locator("td").all_inner_texts()[:2] for i in range(rows.count())]
        if len(states) >= expected and all(state != "pending" for _, state in states):
            return states
        assert time.monotonic() < deadline, f"deliveries still {states}"
        time.sleep(0.5)


def test_an_admin_manages_webhooks_and_sees_their_deliveries(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess, screenshots: Path
) -> None:
    t, other = new_tenant(), new_tenant("other")
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        console.sign_in(t.admin_key)
        page = console.page
        page.click("nav >> text=Webhooks")
        page.wait_for_url(re.compile(r".*/admin/webhooks$"))
        assert "No webhooks in this tenant" in page.locator("main").inner_text()
        page.fill("#url", f"http://127.0.0.1:{server.server_address[1]}/hook")
        page.fill("#description", "CRM sync")
        for box in page.locator("input[name=event_types]").all():
            if box.get_attribute("value") != "memory.created":
                box.uncheck()
        page.click("button:has-text('Create webhook')")
        secret = page.locator("#new-secret").inner_text()
        assert secret.startswith("whsec_")
        page.click("text=See its deliveries")
        webhook_id = page.url.rsplit("/", 1)[1]
        listed = t.admin_api.get("/v1/webhooks").json()["data"]["webhooks"]
        assert [(w["id"], w["event_types"]) for w in listed] == [(webhook_id, ["memory.created"])]
        assert secret not in page.content()

        t.add("wendy", "Delivered to the CRM")
        page.click("button:has-text('Send a test event')")
        page.wait_for_url(re.compile(r".*notice=webhook-test-queued$"))
        states = _delivery_states(console, webhook_id, 2)
        assert sorted(states) == [["memory.created", "succeeded"], ["webhook.test", "succeeded"]]
        api = t.admin_api.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["data"]["deliveries"]
        assert sorted(d["event_type"] for d in api) == ["memory.created", "webhook.test"]
        assert len(_Receiver.received) == 2
        page.screenshot(path=str(screenshots / "webhook.png"))

        page.click("button:has-text('Disable')")
        page.wait_for_url(re.compile(r".*notice=webhook-disabled$"))
        assert t.admin_api.get(f"/v1/webhooks/{webhook_id}").json()["data"]["enabled"] is False

        # Another tenant's admin cannot see or touch it.
        with httpx.Client(base_url=console_service.url) as client:
            form = client.get("/console/login")
            token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
            assert token is not None
            client.post(
                "/console/login",
                data={"api_key": other.admin_key, "signin_token": token.group(1)},
                headers={"Origin": console_service.url},
            )
            assert client.get(f"/console/admin/webhooks/{webhook_id}").status_code == 404
            assert webhook_id not in client.get("/console/admin/webhooks").text

        page.click("summary:has-text('Delete this webhook')")
        page.click("button:has-text('Delete webhook')")
        page.wait_for_url(re.compile(r".*/admin/webhooks\?notice=webhook-deleted$"))
        assert t.admin_api.get("/v1/webhooks").json()["data"]["webhooks"] == []
        console.assert_quiet()
    finally:
        server.shutdown()
        server.server_close()
