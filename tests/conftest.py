"""Shared fixtures: one real service per test session on the embedded Postgres.

The session's service runs with generous rate limits (the rate-limit tests start their own with
the seed's numbers); every test gets a fresh tenant, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ADMIN_KEY, BOOTSTRAP_KEY, ServiceProcess, new_tenant_key


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data_dir: Path = tmp_path_factory.mktemp("service-data")
    proc = ServiceProcess(
        data_dir,
        {
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "MAX_MEMORY_SIZE": "20000",
            "API_KEY": BOOTSTRAP_KEY,
        },
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def admin(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client(ADMIN_KEY) as client:
        yield client


@pytest.fixture
def tenant(admin: httpx.Client) -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(service: ServiceProcess, admin: httpx.Client, tenant: str) -> Iterator[httpx.Client]:
    """A user key of a fresh tenant."""
    with service.client(new_tenant_key(admin, tenant)) as c:
        yield c
