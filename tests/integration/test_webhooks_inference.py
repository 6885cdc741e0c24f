"""Webhook events of inferred adds and of jobs, with the Ollama-speaking test server.

An inferred add stores each extracted fact with its entities in one transaction, so each fact
sends exactly one `memory.created`, complete, and no `memory.updated` follows it. Asynchronous
adds end with `job.completed` or, when Ollama keeps failing, `job.failed`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.ollama_server import REAL, FakeOllama, service_env
from tests.support.server import ADMIN_KEY, ServiceProcess, new_tenant_key
from tests.support.webhooks import Receiver

TIMEOUT = 600.0 if REAL else 30.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[ServiceProcess]:
    env = service_env(
        ollama,
        JOBS_MAX_ATTEMPTS="1",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_POLL_INTERVAL="0.2",
        WEBHOOK_RETRY_BASE_SECONDS="0.2",
        WEBHOOK_RETRY_MAX_SECONDS="1",
    )
    proc = ServiceProcess(tmp_path_factory.mktemp("webhooks-inference"), env).start(timeout=240.0)
    yield proc
    proc.stop()


@pytest.fixture
def clients(service: ServiceProcess, receiver: Receiver, ollama: FakeOllama) -> Iterator[tuple[httpx.Client, str]]:
    """A user client of a new tenant whose webhook posts to /hooks/<tenant>; yields (client, name)."""
    ollama.reset()
    name = f"wi-{uuid.uuid4().hex[:10]}"
    with service.client(ADMIN_KEY) as root:
        admin_key, user_key = new_tenant_key(root, name, role="admin"), new_tenant_key(root, name)
    with service.client(admin_key) as admin:
        created = admin.post("/v1/webhooks", json={"url": receiver.url(name)})
        assert created.status_code == 201, created.text
        receiver.trust(name, created.json()["data"]["secret"])
    with service.client(user_key) as user:
        yield user, name
    ollama.reset()


def wait_bodies(receiver: Receiver, name: str, predicate: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        items = receiver.delivered(name)
        for item in items:
            assert item.verified
            assert all(item.verified.values())
        bodies = list({item.event_id: item.body for item in items}.values())
        if predicate(bodies):
            return bodies
        assert time.monotonic() < deadline, bodies
        time.sleep(0.05)


def wait_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()["data"]
        if job["state"] in ("succeeded", "failed"):
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_an_inferred_add_sends_one_complete_created_event_per_fact(
    clients: tuple[httpx.Client, str], receiver: Receiver
) -> None:
    client, name = clients
    response = client.post(
        "/v1/memories",
        json={
            "messages": [{"role": "user", "content": "I love hiking in the Alps. My sister is called Ana."}],
            "user_id": "hiker",
        },
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["inference"] == "extracted"
    added = {m["id"]: m for m in data["memories"]}
    assert len(added) == 2
    bodies = wait_bodies(receiver, name, lambda b: len(b) >= 2)
    time.sleep(1.0)  # a spurious memory.updated would be queued with the add; give it time to come
    bodies = wait_bodies(receiver, name, lambda b: True)
    assert sorted(b["type"] for b in bodies) == ["memory.created", "memory.created"]
    for body in bodies:
        memory = body["data"]["memory"]
        assert memory == added[memory["id"]], "the memory as the add returned it"
        assert memory["metadata"]["entities"], "with its entities"
        assert memory["relationships"]
    if not REAL:
        entities = sorted(e for b in bodies for e in b["data"]["memory"]["metadata"]["entities"])
        assert entities == ["Alps", "Ana"]


def test_jobs_send_completed_and_failed(
    clients: tuple[httpx.Client, str], receiver: Receiver, ollama: FakeOllama
) -> None:
    client, name = clients
    body = {"messages": [{"role": "user", "content": "I collect old maps."}], "user_id": "mapper"}
    queued = client.post("/v1/memories", params={"async": "true"}, json=body)
    assert queued.status_code == 202, queued.text
    job = wait_job(client, queued.json()["data"]["job_id"])
    assert job["state"] == "succeeded"
    bodies = wait_bodies(receiver, name, lambda b: any(x["type"] == "job.completed" for x in b))
    (completed,) = [b for b in bodies if b["type"] == "job.completed"]
    assert completed["user_id"] == "mapper"
    assert completed["data"]["job_id"] == job["job_id"]
    assert completed["data"]["result"] == job["result"]
    created = {b["data"]["memory"]["id"] for b in bodies if b["type"] == "memory.created"}
    assert {m["id"] for m in job["result"]["memories"]} <= created

    ollama.faults.fail_always["/api/chat"] = 500
    failing = client.post("/v1/memories", params={"async": "true"}, json={**body, "user_id": "unlucky"})
    failed_job = wait_job(client, failing.json()["data"]["job_id"])
    assert failed_job["state"] == "failed"
    bodies = wait_bodies(receiver, name, lambda b: any(x["type"] == "job.failed" for x in b))
    (failed,) = [b for b in bodies if b["type"] == "job.failed"]
    assert failed["user_id"] == "unlucky"
    assert failed["data"]["job_id"] == failed_job["job_id"]
    assert failed["data"]["error"] == failed_job["error"]
    assert failed["data"]["error"]["code"] == "SERVICE_UNAVAILABLE"
