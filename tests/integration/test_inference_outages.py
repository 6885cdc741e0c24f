"""Ollama down or too slow: 503 SERVICE_UNAVAILABLE naming Ollama within OLLAMA_TIMEOUT, then recovery
without a restart of the service.

The service gets a short OLLAMA_TIMEOUT (OUTAGE_TIMEOUT) and, as in production, a shorter
REQUEST_TIMEOUT for operations that only embed: the test server's delays are injected before it
answers (or forwards to a real Ollama), so the timing is the service's, not a model's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import assert_error
from tests.support.ollama_server import REAL, FakeOllama, service_env
from tests.support.server import ServiceProcess, tenant_client

# Short enough for the test, long enough for a real Ollama's embedding of one sentence.
OUTAGE_TIMEOUT = 10.0 if REAL else 3.0
REQUEST_TIMEOUT = OUTAGE_TIMEOUT - 1.0  # production defaults: REQUEST_TIMEOUT 10 < OLLAMA_TIMEOUT 30
SLACK = 1.5  # process, network and scheduling overhead on top of the budget
MESSAGE = [{"role": "user", "content": "I love hiking in the Alps."}]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[ServiceProcess]:
    env = service_env(
        ollama,
        OLLAMA_TIMEOUT=f"{OUTAGE_TIMEOUT:g}",
        REQUEST_TIMEOUT=f"{REQUEST_TIMEOUT:g}",
        OLLAMA_RETRIES="2",
        HEALTH_INTERVAL="0.5",
    )
    proc = ServiceProcess(tmp_path_factory.mktemp("outages"), env).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(service: ServiceProcess, ollama: FakeOllama) -> Iterator[httpx.Client]:
    ollama.reset()
    with tenant_client(service, "out") as c:
        yield c
    ollama.reset()
    if not ollama.running:
        ollama.start()


def _timed(fn: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fn()  # type: ignore[operator]
    return response, time.monotonic() - started


def _ollama_health(client: httpx.Client, up: bool, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        state = client.get("/health").json()["data"]["dependencies"]["ollama"]
        if state["up"] is up or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def test_ollama_down_is_503_at_once_and_recovers_without_restart(
    client: httpx.Client, ollama: FakeOllama, service: ServiceProcess
) -> None:
    assert client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "down"}).status_code == 201
    pid = service.process.pid if service.process else None

    ollama.stop()
    response, elapsed = _timed(lambda: client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "down"}))
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert "Ollama" in error["message"]
    assert response.headers["retry-after"]
    assert elapsed < OUTAGE_TIMEOUT  # refused connections are retried with back-off, then given up on
    search, elapsed = _timed(lambda: client.get("/v1/memories/search", params={"query": "hiking", "user_id": "down"}))
    assert assert_error(search, 503, "SERVICE_UNAVAILABLE")["details"]["dependency"] == "ollama"
    assert elapsed < OUTAGE_TIMEOUT
    # Reads that need no embedding still work.
    assert client.get("/v1/memories/user/down").json()["data"]["total"] >= 1
    state = _ollama_health(client, up=False)
    assert state["up"] is False
    assert client.get("/health").json()["data"]["status"] == "degraded"

    ollama.start()  # same port: Ollama is back
    response = client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "back"})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["inference"] == "extracted"
    found = client.get("/v1/memories/search", params={"query": "hiking", "user_id": "back"})
    assert found.status_code == 200
    assert _ollama_health(client, up=True)["up"] is True
    assert service.process is not None
    assert service.process.pid == pid  # the same process recovered


def test_slow_extraction_is_503_within_the_timeout(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.faults.delays["/api/chat"] = OUTAGE_TIMEOUT + 5
    response, elapsed = _timed(lambda: client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "slow"}))
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert f"within {OUTAGE_TIMEOUT:g}s" in error["message"]
    assert OUTAGE_TIMEOUT * 0.9 <= elapsed < OUTAGE_TIMEOUT + SLACK
    assert len(ollama.recorded("/api/chat")) == 1  # a timeout leaves no budget for a retry
    assert client.get("/v1/memories/user/slow").json()["data"]["total"] == 0  # nothing half-stored

    ollama.faults.delays.clear()
    response = client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "slow"})
    assert response.status_code == 201, response.text


def test_slow_embeddings_are_503_naming_ollama(client: httpx.Client, ollama: FakeOllama) -> None:
    """A search waits on Ollama for its query's embedding: REQUEST_TIMEOUT ends it, and the 503
    names Ollama (what the call was waiting on), not Postgres."""
    ollama.faults.delays["/api/embed"] = OUTAGE_TIMEOUT + 5
    params = {"query": "hiking", "user_id": "slow-embed"}
    response, elapsed = _timed(lambda: client.get("/v1/memories/search", params=params))
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"]["dependency"] == "ollama"
    assert REQUEST_TIMEOUT * 0.9 <= elapsed < REQUEST_TIMEOUT + SLACK
    ollama.faults.delays.clear()
    assert client.get("/v1/memories/search", params=params).status_code == 200


def test_a_flapping_ollama_costs_no_error(client: httpx.Client, ollama: FakeOllama) -> None:
    """5xx on embeddings and chat, within the retry budget: the client never sees them."""
    ollama.faults.errors["/api/embed"] = [502]
    ollama.faults.errors["/api/chat"] = [503, 500]
    response = client.post("/v1/memories", json={"messages": MESSAGE, "user_id": "flap"})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["inference"] == "extracted"
    assert len(ollama.recorded("/api/chat")) == 3
