"""X-Forwarded-For is believed only from the configured proxy (FORWARDED_ALLOW_IPS), on both paths.

The service listens on 127.0.0.1; the "proxy" is 127.0.0.2 (FORWARDED_ALLOW_IPS). A client on
127.0.0.1 that forges a fresh X-Forwarded-For on every request still lands in its own per-address
bucket (20 unauthenticated requests, then 429) and the access log records 127.0.0.1; the same
requests sent from the proxy's address are counted per forwarded address and logged with it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.redis import RedisServer
from tests.support.server import ServiceProcess

pytestmark = pytest.mark.redis
PROXY = "127.0.0.2"
CLIENT = "127.0.0.1"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-fwd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[1, 2], ids=["uvicorn", "gunicorn-2-workers"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[ServiceProcess]:
    workers: int = request.param
    svc = ServiceProcess(
        tmp_path_factory.mktemp(f"fwd-{workers}"),
        {"RATE_LIMIT_STORAGE_URI": redis_server.url, "FORWARDED_ALLOW_IPS": PROXY},
        workers=workers,
    ).start()
    redis_server.flush()  # the other serving path's buckets (same Redis, same addresses) start empty
    yield svc
    svc.stop()


def _unauthenticated_burst(service: ServiceProcess, source: str, forwarded: list[str]) -> list[int]:
    """One request per forwarded address, from `source`, each with an unknown key."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=service.url, transport=transport, timeout=30.0) as client:
        return [
            client.get(
                "/status", headers={"Authorization": "Bearer m0sk_guessing", "X-Forwarded-For": address}
            ).status_code
            for address in forwarded
        ]


def _fresh_addresses(count: int) -> list[str]:
    """Documentation addresses (RFC 5737) no other test uses, so every bucket starts empty."""
    base = uuid.uuid4().int % 200
    return [f"198.51.{base}.{i + 1}" for i in range(count)]


def _logged_clients(service: ServiceProcess, since: int) -> set[str]:
    """Client addresses in the access-log lines (401s and 429s on /status) written after `since`."""
    time.sleep(0.5)  # workers flush their log lines to the shared file
    clients = set()
    for line in service.logs()[since:].splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("event") == "request" and entry.get("route") == "/status" and entry.get("status") in (401, 429):
            clients.add(entry.get("client"))
    return clients


def test_forged_forwarded_for_from_a_non_proxy_is_ignored(service: ServiceProcess) -> None:
    forged = _fresh_addresses(22)
    since = len(service.logs())
    statuses = _unauthenticated_burst(service, CLIENT, forged)
    # Every forged address would have its own empty bucket; the real peer's bucket fills at 20.
    assert statuses == [401] * 20 + [429] * 2
    assert _logged_clients(service, since) == {CLIENT}


def test_forwarded_for_from_the_proxy_is_the_client_address(service: ServiceProcess) -> None:
    forwarded = _fresh_addresses(22)
    since = len(service.logs())
    statuses = _unauthenticated_burst(service, PROXY, forwarded)
    assert statuses == [401] * 22  # one request per client address: no bucket fills
    assert _logged_clients(service, since) == set(forwarded)
    # The same client, behind the proxy, is limited like any other address.
    again = _unauthenticated_burst(service, PROXY, [forwarded[0]] * 21)
    assert again == [401] * 19 + [429] * 2


def test_the_setting_refuses_a_malformed_proxy_address(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path, {"FORWARDED_ALLOW_IPS": "10.0.0.1/24"}).start(wait=False)
    assert svc.process is not None
    assert svc.process.wait(60) == 2
    assert "is not an IP address, a CIDR network" in svc.logs()
