"""Asynchronous adds: 202 with a job id, jobs in Postgres that complete, fail visibly, survive a
crash of the process running them, and never run twice across workers."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_error
from tests.support.ollama_server import NEEDS_FAKE, REAL, FakeOllama, metric, service_env
from tests.support.server import ADMIN_KEY, ServiceProcess, embedded_conninfo, new_tenant_key

LEASE = 2.0
MESSAGE = [{"role": "user", "content": "I love hiking in the Alps. My sister is called Ana."}]
JOB_TIMEOUT = 600.0 if REAL else 30.0


def _env(ollama: FakeOllama, **extra: str) -> dict[str, str]:
    return service_env(ollama, JOBS_LEASE_SECONDS=f"{LEASE:g}", JOBS_MAX_ATTEMPTS="2", **extra)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ollama: FakeOllama) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(tmp_path_factory.mktemp("jobs"), _env(ollama, JOBS_WORKERS="1")).start()
    yield proc
    proc.stop()


@pytest.fixture
def key(service: ServiceProcess, ollama: FakeOllama) -> Iterator[str]:
    ollama.reset()
    with service.client(ADMIN_KEY) as admin:
        yield new_tenant_key(admin, f"job-{uuid.uuid4().hex[:10]}")
    ollama.reset()
    if not ollama.running:
        ollama.start()


@pytest.fixture
def client(service: ServiceProcess, key: str) -> Iterator[httpx.Client]:
    with service.client(key) as c:
        yield c


def submit(client: httpx.Client, user_id: str, messages: list[dict[str, str]] = MESSAGE) -> str:
    response = client.post("/v1/memories", params={"async": "true"}, json={"messages": messages, "user_id": user_id})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["state"] == "queued"
    assert data["status_url"] == f"/v1/jobs/{data['job_id']}"
    assert response.headers["location"] == data["status_url"]
    return str(data["job_id"])


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def wait_job(client: httpx.Client, job_id: str, states: tuple[str, ...] = ("succeeded", "failed")) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()["data"]
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job['state']}: {job}"
        time.sleep(0.1)


def test_async_add_completes_with_the_synchronous_result_shape(client: httpx.Client) -> None:
    job_id = submit(client, "a1")
    job = wait_job(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 1
    assert job["error"] is None
    assert at(job["created_at"]) <= at(job["started_at"]) <= at(job["finished_at"])
    result = job["result"]
    assert result["inference"] == "extracted"
    assert result["count"] == len(result["memories"]) >= 1

    sync = client.post("/v1/memories", json={"messages": [{"role": "user", "content": "I work at ACME."}]})
    assert sync.status_code == 201
    assert set(result) == set(sync.json()["data"])
    assert set(result["memories"][0]) == set(sync.json()["data"]["memories"][0])
    for memory in result["memories"]:
        stored = client.get(f"/v1/memories/{memory['id']}")
        assert stored.status_code == 200
        assert stored.json()["data"]["content"] == memory["content"]
        assert stored.json()["data"]["user_id"] == "a1"


def test_async_add_is_validated_before_it_is_accepted(client: httpx.Client, service: ServiceProcess) -> None:
    def post(body: dict) -> httpx.Response:
        return client.post("/v1/memories?async=true", json=body)

    too_big = "x" * 1_000_001  # over MAX_MEMORY_SIZE (default 1,000,000 bytes)
    assert_error(post({"messages": [{"role": "user", "content": too_big}]}), 413, "PAYLOAD_TOO_LARGE")
    assert_error(post({"messages": [{"role": "assistant", "content": "hi"}]}), 400, "INVALID_REQUEST")
    assert_error(post({"messages": []}), 400, "INVALID_REQUEST")
    assert_error(post({"messages": MESSAGE, "user_id": "has space"}), 400, "INVALID_REQUEST")
    assert_error(post({"messages": MESSAGE, "metadata": {"inference": "x"}}), 400, "INVALID_REQUEST")
    assert_error(client.post("/v1/memories?async=maybe", json={"messages": MESSAGE}), 400, "INVALID_REQUEST")
    with service.client(None) as anonymous:
        assert_error(anonymous.post("/v1/memories?async=true", json={"messages": MESSAGE}), 401, "UNAUTHORIZED")


def test_a_job_is_visible_to_its_tenant_only(client: httpx.Client, service: ServiceProcess) -> None:
    job_id = submit(client, "mine")
    wait_job(client, job_id)
    with service.client(ADMIN_KEY) as admin, service.client(new_tenant_key(admin, "other-tenant")) as other:
        error = assert_error(other.get(f"/v1/jobs/{job_id}"), 404, "NOT_FOUND")
        assert job_id in error["message"]
        assert_error(admin.get(f"/v1/jobs/{job_id}"), 404, "NOT_FOUND")  # admin of another tenant too
    assert_error(client.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "NOT_FOUND")
    assert_error(client.get("/v1/jobs/not-a-uuid"), 404, "NOT_FOUND")


def test_a_failing_job_reports_the_error_after_its_retries(
    client: httpx.Client, ollama: FakeOllama, service: ServiceProcess
) -> None:
    with service.client(ADMIN_KEY) as admin:
        failed_before = metric(admin, "memory_jobs_total", state="failed")
        ollama.faults.fail_always["/api/chat"] = 500
        job = wait_job(client, submit(client, "failing"))
        assert job["state"] == "failed"
        assert job["attempts"] == 2  # JOBS_MAX_ATTEMPTS
        assert job["result"] is None
        assert job["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert job["error"]["details"] == {"dependency": "ollama"}
        assert "Ollama answered 500" in job["error"]["message"]
        assert metric(admin, "memory_jobs_total", state="failed") == failed_before + 1
    assert len(ollama.recorded("/api/chat")) == 2 * 3  # two attempts, each with its two retries
    assert client.get("/v1/memories/user/failing").json()["data"]["total"] == 0


def test_a_job_waits_out_an_ollama_outage(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.stop()
    job_id = submit(client, "outage")
    queued = wait_job(client, job_id, states=("queued",))
    deadline = time.monotonic() + 10
    while queued["attempts"] < 1 or queued["error"] is None:  # the first attempt failed, a retry is due
        assert time.monotonic() < deadline, queued
        time.sleep(0.1)
        queued = wait_job(client, job_id, states=("queued", "succeeded", "failed"))
    assert queued["state"] == "queued"
    assert queued["error"]["code"] == "SERVICE_UNAVAILABLE"
    ollama.start()
    job = wait_job(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    assert job["error"] is None
    assert job["result"]["count"] >= 1


def test_the_worker_pool_is_bounded(client: httpx.Client, ollama: FakeOllama) -> None:
    ollama.faults.delays["/api/chat"] = 0.5
    jobs = [submit(client, f"pool{i}") for i in range(3)]
    results = [wait_job(client, job_id) for job_id in jobs]
    assert [j["state"] for j in results] == ["succeeded"] * 3
    assert ollama.max_in_flight["/api/chat"] == 1  # JOBS_WORKERS=1
    starts = sorted(at(j["started_at"]) for j in results)
    ends = sorted(at(j["finished_at"]) for j in results)
    assert all(end <= start for end, start in zip(ends, starts[1:], strict=False))  # one after the other


@pytest.mark.skipif(REAL, reason=NEEDS_FAKE + ": counts facts per message")
def test_jobs_survive_a_crash_and_a_restart(tmp_path: Path, ollama: FakeOllama) -> None:
    ollama.reset()
    data = tmp_path / "crash"
    env = _env(ollama, JOBS_WORKERS="1")
    first = ServiceProcess(data, env).start()
    try:
        with first.client(ADMIN_KEY) as admin:
            key = new_tenant_key(admin, "crash")
        ollama.faults.delays["/api/chat"] = 3.0
        with first.client(key) as c:
            jobs = [submit(c, "crash", [{"role": "user", "content": f"I own car number {i}."}]) for i in range(3)]
            running = wait_job(c, jobs[0], states=("running",))
            assert running["attempts"] == 1
        first.signal(signal.SIGKILL)  # no shutdown: the running job's lease is left to expire
        assert first.process is not None
        first.process.wait(10)
    finally:
        first.stop()

    ollama.faults.delays.clear()
    second = ServiceProcess(data, env).start()
    try:
        with second.client(key) as c:
            results = [wait_job(c, job_id) for job_id in jobs]
            assert [j["state"] for j in results] == ["succeeded"] * 3
            assert results[0]["attempts"] == 2  # interrupted, then run again
            assert [j["attempts"] for j in results[1:]] == [1, 1]  # were still queued
            contents = sorted(m["content"] for j in results for m in j["result"]["memories"])
            assert contents == [f"User owns car number {i}" for i in range(3)]
            listed = c.get("/v1/memories/user/crash", params={"limit": 100}).json()["data"]
            assert sorted(m["content"] for m in listed["memories"]) == contents  # nothing stored twice
    finally:
        second.stop()


def test_two_processes_on_one_database_never_run_a_job_twice(tmp_path: Path, ollama: FakeOllama) -> None:
    """Two service processes ("hosts") with two job workers each, sharing one Postgres: each job runs once."""
    ollama.reset()
    env = _env(ollama, JOBS_WORKERS="2")
    first = ServiceProcess(tmp_path / "host-a", env).start()
    second = None
    try:
        shared = {**env, "MEMORY_SERVICE_EMBEDDED_PG_URI": embedded_conninfo(tmp_path / "host-a")}
        second = ServiceProcess(tmp_path / "host-b", shared).start()
        with first.client(ADMIN_KEY) as admin:
            key = new_tenant_key(admin, "multi")
        ollama.faults.delays["/api/chat"] = LEASE + 0.5  # longer than a lease: held by renewals alone
        with first.client(key) as a, second.client(key) as b:
            jobs = [submit(a if i % 2 else b, f"m{i}", [{"role": "user", "content": f"I own bike number {i}."}])
                    for i in range(8)]  # fmt: skip
            results = [wait_job(a, job_id) for job_id in jobs]
        assert [j["state"] for j in results] == ["succeeded"] * 8
        assert [j["attempts"] for j in results] == [1] * 8
        assert len(ollama.chats()) == 8  # one extraction per job, none twice
        assert ollama.max_in_flight["/api/chat"] > 2  # more workers than one process has ran side by side
    finally:
        if second is not None:
            second.stop()
        first.stop()
