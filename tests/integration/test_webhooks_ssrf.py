"""Webhooks cannot be pointed at the operator's own network: refused when saved, and again when sent.

The service runs as in production: APP_ENV=production (https only), WEBHOOK_ALLOW_PRIVATE_TARGETS
unset (false), the bootstrap admin key of tenant `default`. No request leaves the machine: every
URL here is refused before a connection is made, and the one delivery attempted targets loopback.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.api import add_memory, assert_error
from tests.support.ollama_server import metric
from tests.support.server import ServiceProcess, embedded_conninfo
from tests.support.webhooks import Receiver

BOOTSTRAP_KEY = "wh-ssrf-bootstrap-admin-key-" + "k" * 24


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {
        "APP_ENV": "production",
        "API_KEY": BOOTSTRAP_KEY,
        "WEBHOOK_POLL_INTERVAL": "0.2",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_MAX_SECONDS": "1",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "1000000",
    }
    proc = ServiceProcess(tmp_path_factory.mktemp("webhooks-ssrf"), env).start(timeout=240.0)
    yield proc
    proc.stop()


@pytest.fixture
def admin(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client(BOOTSTRAP_KEY) as client:
        yield client


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.1.2.3:8443/hook",
        "https://10.0.0.7/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.100.100.200/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/",
        "https://localhost/hook",
        "https://2130706433/hook",
    ],
)
def test_private_and_metadata_targets_are_refused(admin: httpx.Client, url: str) -> None:
    error = assert_error(admin.post("/v1/webhooks", json={"url": url}), 400, "INVALID_REQUEST")
    assert error["details"]["reason"] == "address", error
    assert "resolves to" in error["message"]


def test_plain_http_is_refused_in_production(admin: httpx.Client) -> None:
    error = assert_error(admin.post("/v1/webhooks", json={"url": "http://93.184.216.34/hook"}), 400, "INVALID_REQUEST")
    assert error["details"]["reason"] == "scheme"
    assert "https" in error["message"]


def test_names_that_do_not_resolve_are_refused(admin: httpx.Client) -> None:
    error = assert_error(
        admin.post("/v1/webhooks", json={"url": f"https://{uuid.uuid4().hex}.invalid/hook"}), 400, "INVALID_REQUEST"
    )
    assert error["details"]["reason"] == "dns"


def test_a_webhook_cannot_be_moved_to_a_private_target(admin: httpx.Client, service: ServiceProcess) -> None:
    """PATCH checks the new URL like POST does (a public one is saved directly in the database:
    nothing public resolves here)."""
    hook_id = insert_webhook(service, "https://93.184.216.34/hook")
    error = assert_error(
        admin.patch(f"/v1/webhooks/{hook_id}", json={"url": "https://10.1.1.1/x"}), 400, "INVALID_REQUEST"
    )
    assert error["details"]["reason"] == "address"
    assert admin.get(f"/v1/webhooks/{hook_id}").json()["data"]["url"] == "https://93.184.216.34/hook"
    assert admin.delete(f"/v1/webhooks/{hook_id}").status_code == 200


def insert_webhook(service: ServiceProcess, url: str) -> str:
    """A webhook row as an earlier configuration (or an earlier DNS answer) could have left it."""
    hook_id = str(uuid.uuid4())
    with psycopg.connect(embedded_conninfo(service.data_dir), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO webhooks (id, tenant, url, event_types, secret) VALUES (%s, 'default', %s, %s, %s)",
            (hook_id, url, ["memory.created"], "whsec_" + "A" * 43 + "="),
        )
    return hook_id


def test_the_target_is_checked_again_at_delivery(admin: httpx.Client, service: ServiceProcess) -> None:
    """A saved URL whose host now resolves to loopback is not sent to: the attempt fails, recorded."""
    receiver = Receiver().start()
    try:
        refused_before = metric(admin, "memory_webhook_delivery_errors_total", reason="refused_target")
        hook_id = insert_webhook(service, f"https://localhost:{receiver.port}/hooks/rebound")
        add_memory(admin, "a memory for a rebound name", user_id="ssrf")
        deadline = time.monotonic() + 30
        while True:
            found = admin.get(f"/v1/webhooks/{hook_id}/deliveries").json()["data"]["deliveries"]
            if found and found[0]["attempts"] >= 1 and found[0]["last_error"]:
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        (delivery,) = found
        assert delivery["state"] == "pending", "refused attempts are retried (DNS may change back)"
        assert "a loopback address" in delivery["last_error"], delivery
        assert delivery["last_status_code"] is None
        assert metric(admin, "memory_webhook_delivery_errors_total", reason="refused_target") > refused_before
        assert receiver.received() == [], "no connection reached the receiver"
        assert admin.delete(f"/v1/webhooks/{hook_id}").status_code == 200
    finally:
        receiver.stop()
