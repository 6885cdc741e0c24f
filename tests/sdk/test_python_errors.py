"""Errors, retries and timeouts of the Python SDK, each from a real response of the real service:
its 401, 403, 404, 400, 409, 413, a real 429 (a key with the default 5-per-second burst), a real
503 (the embedded Postgres frozen with SIGSTOP), a connection reset mid-request (a loopback proxy
that loses the first answer), and a connection refused. Webhook creation and secret rotation,
which carry no Idempotency-Key, are not sent again after a lost answer."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from mem0_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncMemoryClient,
    ForbiddenError,
    IdempotencyConflictError,
    InvalidRequestError,
    Mem0Error,
    MemoryClient,
    MemoryNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServiceUnavailableError,
    UnauthorizedError,
)

from tests.sdk.conftest import BIG_LIMIT
from tests.support.proxy import DroppingProxy
from tests.support.server import ServiceProcess, free_port, frozen_postgres, new_tenant_key
from tests.support.webhooks import Receiver


def _check(error: Mem0Error, cls: type[Mem0Error], status: int, code: str) -> None:
    assert type(error) is cls
    assert error.status == status
    assert error.code == code
    assert error.message
    assert error.request_id
    assert isinstance(error.details, dict)
    assert code in str(error)
    assert error.request_id in str(error)


def test_401_403_404_400_409_413_raise_their_classes(
    client: MemoryClient, sdk_service: ServiceProcess, new_key: Callable[..., str]
) -> None:
    with pytest.raises(UnauthorizedError) as unauthorized:
        MemoryClient("mem0_not_a_key", sdk_service.url).status()
    _check(unauthorized.value, UnauthorizedError, 401, "UNAUTHORIZED")

    with pytest.raises(ForbiddenError) as forbidden:
        client.admin.list_keys()
    _check(forbidden.value, ForbiddenError, 403, "FORBIDDEN")

    missing_id = str(uuid.uuid4())
    with pytest.raises(MemoryNotFoundError) as not_found:
        client.get(missing_id)
    _check(not_found.value, MemoryNotFoundError, 404, "MEMORY_NOT_FOUND")
    assert not_found.value.details == {"id": missing_id}
    with pytest.raises(NotFoundError) as no_job:
        client.job(missing_id)
    _check(no_job.value, NotFoundError, 404, "NOT_FOUND")

    with pytest.raises(InvalidRequestError) as too_many:
        client.search("anything", limit=1000)
    _check(too_many.value, InvalidRequestError, 400, "INVALID_REQUEST")
    assert too_many.value.details["field"] == "limit"
    with pytest.raises(InvalidRequestError) as reserved:
        client.add("hello", metadata={"user_id": "someone else"})
    assert reserved.value.details["errors"][0]["field"] == "metadata"

    with pytest.raises(PayloadTooLargeError) as too_large:
        client.add("x" * 20_001)
    _check(too_large.value, PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE")
    assert too_large.value.details["limit"] == 20_000

    key = str(uuid.uuid4())
    first = client.add("first body", user_id="idem", idempotency_key=key)
    with pytest.raises(IdempotencyConflictError) as conflict:
        client.add("another body", user_id="idem", idempotency_key=key)
    _check(conflict.value, IdempotencyConflictError, 409, "IDEMPOTENCY_CONFLICT")
    again = client.add("first body", user_id="idem", idempotency_key=key)
    assert [m.id for m in again.memories] == [m.id for m in first.memories]
    assert client.get_page("idem").total == 1


def _until_limited(client: MemoryClient) -> RateLimitError:
    for _ in range(20):
        try:
            client.get_page("u")
        except RateLimitError as exc:
            return exc
    raise AssertionError("20 quick requests were never refused")


@pytest.fixture
def slow_key(new_key: Callable[..., str]) -> str:
    """A key with the service's default limits: 5 requests per second."""
    return new_key(rate_limit=None, prefix="slow")


def test_429_raises_rate_limit_error_then_a_retry_honours_retry_after(
    sdk_service: ServiceProcess, slow_key: str
) -> None:
    statuses: list[int] = []
    with httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}) as http:
        impatient = MemoryClient(slow_key, sdk_service.url, max_retries=0, http_client=http)
        error = _until_limited(impatient)
        _check(error, RateLimitError, 429, "RATE_LIMIT_EXCEEDED")
        assert error.retry_after is not None
        assert error.retry_after >= 1
        assert error.details["window"] == "burst"
        assert statuses.count(200) == 5

        statuses.clear()
        patient = impatient.with_options(max_retries=3)
        started = time.monotonic()
        page = patient.get_page("u")
        assert page.total == 0
        assert statuses[0] == 429
        assert statuses[-1] == 200
        assert time.monotonic() - started >= error.retry_after * 0.9

        statuses.clear()
        stingy = MemoryClient(slow_key, sdk_service.url, max_retries=3, max_retry_wait=0.1, http_client=http)
        _until_limited(stingy)
        assert statuses[-1] == 429  # Retry-After above max_retry_wait: not retried, given back at once


@pytest.fixture
def recovering(sdk_service: ServiceProcess, new_key: Callable[..., str]) -> Iterator[None]:
    """After a test that froze Postgres: wait until the service answers again."""
    yield
    with MemoryClient(new_key(), sdk_service.url, max_retries=0) as probe:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe.get_page("probe")
                return
            except (ServiceUnavailableError, APIConnectionError):
                assert time.monotonic() < deadline, "the service did not recover after Postgres was thawed"
                time.sleep(0.3)


@pytest.mark.usefixtures("recovering")
def test_503_timeouts_and_a_retry_after_the_outage(sdk_service: ServiceProcess, client: MemoryClient) -> None:
    memory = client.add("kept across the outage", user_id="outage").memories[0]
    no_retry = client.with_options(max_retries=0)
    with frozen_postgres(sdk_service.data_dir):
        with pytest.raises(ServiceUnavailableError) as unavailable:
            no_retry.search("outage", user_id="outage")
        _check(unavailable.value, ServiceUnavailableError, 503, "SERVICE_UNAVAILABLE")
        assert unavailable.value.dependency == "postgres"
        assert unavailable.value.retry_after is not None

        started = time.monotonic()
        with pytest.raises(APITimeoutError) as timed_out:
            no_retry.with_options(timeout=0.3).search("outage", user_id="outage")
        assert time.monotonic() - started < 1.5
        assert isinstance(timed_out.value, TimeoutError)
        assert timed_out.value.status is None

        async def cancelled() -> None:
            async with AsyncMemoryClient(client.api_key, sdk_service.url, timeout=None) as aclient:
                await asyncio.wait_for(aclient.search("outage", user_id="outage"), 0.3)

        started = time.monotonic()
        with pytest.raises(TimeoutError):
            asyncio.run(cancelled())
        assert time.monotonic() - started < 1.5

    statuses: list[int] = []
    result: list[object] = []
    with httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}) as http:
        patient = MemoryClient(client.api_key, sdk_service.url, max_retries=4, http_client=http)
        worker = threading.Thread(target=lambda: result.append(patient.get(memory.id)))
        with frozen_postgres(sdk_service.data_dir):
            worker.start()
            deadline = time.monotonic() + 10
            while not statuses:  # thaw once the first attempt has had its 503
                assert time.monotonic() < deadline, "no answer while Postgres was frozen"
                time.sleep(0.05)
        worker.join(30)
    assert statuses[0] == 503
    assert statuses[-1] == 200
    assert [getattr(r, "id", None) for r in result] == [memory.id]


def test_an_add_retried_after_the_connection_drops_is_stored_once(
    sdk_service: ServiceProcess, client: MemoryClient, direct: httpx.Client
) -> None:
    proxy = DroppingProxy(sdk_service.port, drop_first=1)
    try:
        with MemoryClient(client.api_key, proxy.url) as through_proxy:
            result = through_proxy.add("stored exactly once", user_id="dropped")
    finally:
        proxy.close()
    assert proxy.connections == 2
    [lost] = proxy.dropped_requests
    assert b"idempotency-key: " in lost.lower()
    stored = direct.get("/v1/memories/user/dropped").json()["data"]
    assert stored["total"] == 1
    assert [m["id"] for m in stored["memories"]] == [m.id for m in result.memories]


def test_without_retries_a_drop_raises_and_the_same_key_recovers_the_answer(
    sdk_service: ServiceProcess, client: MemoryClient, direct: httpx.Client
) -> None:
    proxy = DroppingProxy(sdk_service.port, drop_first=1)
    key = str(uuid.uuid4())
    try:
        with MemoryClient(client.api_key, proxy.url, max_retries=0) as through_proxy:
            with pytest.raises(APIConnectionError) as dropped:
                through_proxy.add("sent once, answer lost", user_id="manual", idempotency_key=key)
            assert dropped.value.status is None
            assert not isinstance(dropped.value, TimeoutError)
            recovered = through_proxy.add("sent once, answer lost", user_id="manual", idempotency_key=key)
    finally:
        proxy.close()
    stored = direct.get("/v1/memories/user/manual").json()["data"]
    assert stored["total"] == 1
    assert [m["id"] for m in stored["memories"]] == [m.id for m in recovered.memories]


def test_webhook_create_and_rotation_are_not_sent_again_after_a_lost_answer(
    sdk_service: ServiceProcess, admin_key: str, receiver: Receiver
) -> None:
    """A resent create would make a second webhook; a resent rotation would replace the secret
    the caller never saw. Both raise instead, and the service did each exactly once."""
    with sdk_service.client(admin_key) as operator:
        key = new_tenant_key(operator, f"sdk-drop-{uuid.uuid4().hex[:8]}", role="admin", rate_limit=BIG_LIMIT)
    url = receiver.url("dropped-create")
    proxy = DroppingProxy(sdk_service.port, drop_first=1)
    try:
        with MemoryClient(key, proxy.url, max_retries=3) as through_proxy, pytest.raises(APIConnectionError):
            through_proxy.webhooks.create(url)
    finally:
        proxy.close()
    assert proxy.connections == 1
    with MemoryClient(key, sdk_service.url) as direct:
        [made] = direct.webhooks.list()
        assert made.url == url
        assert made.previous_secret_expires_at is None

        proxy = DroppingProxy(sdk_service.port, drop_first=1)
        try:
            with MemoryClient(key, proxy.url, max_retries=3) as through_proxy:
                with pytest.raises(APIConnectionError):
                    through_proxy.webhooks.rotate_secret(made.id)
                assert through_proxy.webhooks.get(made.id).previous_secret_expires_at is not None  # it did rotate
        finally:
            proxy.close()
        assert proxy.connections == 2  # the rotation once, then the get
        [lost] = proxy.dropped_requests
        assert lost.startswith(b"POST /v1/webhooks/")


def test_connection_refused_is_retried_then_raised() -> None:
    attempts: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: attempts.append(r.method)]}) as http:
        client = MemoryClient("mem0_any_key", f"http://127.0.0.1:{free_port()}", max_retries=2, http_client=http)
        with pytest.raises(APIConnectionError) as refused:
            client.health()
    assert len(attempts) == 3
    assert refused.value.code == "CONNECTION_ERROR"
    assert isinstance(refused.value.__cause__, httpx.ConnectError)
