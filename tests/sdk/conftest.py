"""One service for the SDK tests, with a small burst window so a real 429 asks for a short wait.

Defaults: 5 requests per second and 1000 per minute per key (RATE_LIMIT_BURST_SECONDS=1), so a
key without its own limit (`slow_key`) is refused after five quick requests with Retry-After: 1.
Other keys get a large per-minute limit of their own, which scales their burst far out of reach.
DB_TIMEOUT and REQUEST_TIMEOUT are short so a frozen Postgres gives its 503 within seconds.
Webhooks may target loopback (WEBHOOK_ALLOW_PRIVATE_TARGETS: the tests' receiver listens there)
and workers poll often, so a test delivery arrives in well under a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from mem0_client import MemoryClient

from tests.support.server import BOOTSTRAP_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Receiver

BIG_LIMIT = 10_000_000


@pytest.fixture(scope="session")
def sdk_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {
        "RATE_LIMIT_PER_MINUTE": "1000",
        "RATE_LIMIT_BURST": "5",
        "RATE_LIMIT_BURST_SECONDS": "1",
        "MAX_MEMORY_SIZE": "20000",
        "DB_TIMEOUT": "1",
        "REQUEST_TIMEOUT": "2",
        "HEALTH_INTERVAL": "0.5",
        "API_KEY": BOOTSTRAP_KEY,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_POLL_INTERVAL": "0.2",
    }
    service = ServiceProcess(tmp_path_factory.mktemp("sdk-service"), env).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def admin_key(sdk_service: ServiceProcess) -> str:
    """An operator key (it makes keys for every test's own tenant) with a large limit of its own
    (the bootstrap key has the 5/s default); only the bootstrap key may create one over HTTP."""
    with sdk_service.client(BOOTSTRAP_KEY) as bootstrap:
        return new_tenant_key(bootstrap, "sdk-admins", role="operator", rate_limit=BIG_LIMIT)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """A real webhook receiver on loopback that verifies every signature with `standardwebhooks`."""
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="session")
def new_key(sdk_service: ServiceProcess, admin_key: str) -> Callable[..., str]:
    """A user key of a new tenant (own large limit unless `rate_limit=None` is asked for)."""
    admin = httpx.Client(base_url=sdk_service.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)

    def make(rate_limit: int | None = BIG_LIMIT, prefix: str = "sdk") -> str:
        return new_tenant_key(admin, f"{prefix}-{uuid.uuid4().hex[:10]}", rate_limit=rate_limit)

    return make


@pytest.fixture
def client(sdk_service: ServiceProcess, new_key: Callable[..., str]) -> Iterator[MemoryClient]:
    with MemoryClient(new_key(), sdk_service.url) as c:
        yield c


@pytest.fixture
def direct(sdk_service: ServiceProcess, client: MemoryClient) -> Iterator[httpx.Client]:
    """Plain HTTP with the same key as `client`: to check what the SDK did without the SDK."""
    with sdk_service.client(client.api_key) as c:
        yield c
