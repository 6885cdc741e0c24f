"""The official mem0 clients against the real service: fixtures shared by tests/compat.

mem0's Python client reads its telemetry switch and writes its config directory when it is
imported, so both are set here, before any test module imports it: no test talks to PostHog and
nothing is written under the home directory. The service is the session's (tests/conftest.py);
every test gets keys of fresh tenants, so tests never see each other's memories.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["MEM0_TELEMETRY"] = "False"
os.environ.setdefault("MEM0_DIR", str(Path(tempfile.gettempdir()) / f"mem0-compat-client-{os.getuid()}"))

import httpx
import pytest
from mem0 import MemoryClient

from tests.support.server import ServiceProcess, new_tenant_key


def platform_http(service: ServiceProcess, key: str) -> httpx.Client:
    """Raw HTTP in the Platform dialect (`Token` scheme), never following redirects."""
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Token {key}"}, timeout=30.0)


def wait_for_event(service: ServiceProcess, key: str, event_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll `GET /v1/event/{id}/` until the asynchronous add has finished; its final state."""
    deadline = time.monotonic() + timeout
    with platform_http(service, key) as http:
        while True:
            response = http.get(f"/v1/event/{event_id}/")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in ("SUCCEEDED", "FAILED"):
                return body
            assert time.monotonic() < deadline, f"event {event_id} still {body['status']} after {timeout}s"
            time.sleep(0.1)


@pytest.fixture
def key(admin: httpx.Client, tenant: str) -> str:
    """A user key of a fresh tenant."""
    return new_tenant_key(admin, tenant)


@pytest.fixture
def other_key(admin: httpx.Client) -> str:
    """A user key of another fresh tenant."""
    return new_tenant_key(admin, f"o-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def mem0(service: ServiceProcess, key: str) -> Iterator[MemoryClient]:
    client = MemoryClient(api_key=key, host=service.url)
    yield client
    client.client.close()


@pytest.fixture
def other_mem0(service: ServiceProcess, other_key: str) -> Iterator[MemoryClient]:
    client = MemoryClient(api_key=other_key, host=service.url)
    yield client
    client.client.close()
