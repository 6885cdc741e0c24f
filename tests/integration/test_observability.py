"""What operators see: metrics across workers, bounded labels, structured logs, exported traces."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.api import add_memory
from tests.support.otlp import OtlpReceiver
from tests.support.redis import RedisServer
from tests.support.server import ADMIN_KEY, DEV_KEY, ServiceProcess

UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "100000000", "RATE_LIMIT_BURST": "100000000"}


def _samples(metrics: str, family: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for line in metrics.splitlines():
        if line.startswith(family + "{") or line.startswith(family + " "):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.rsplit(" ", 1)[0]))
            found.append((labels, float(line.rsplit(" ", 1)[1])))
    return found


@pytest.fixture(scope="module")
def four_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    redis_server = RedisServer(tmp_path_factory.mktemp("obs-redis")).start()
    service = ServiceProcess(
        tmp_path_factory.mktemp("obs"), {**UNLIMITED, "RATE_LIMIT_STORAGE_URI": redis_server.url}, workers=4
    ).start()
    yield service
    service.stop()
    redis_server.stop()


def _worker_pids(service: ServiceProcess) -> list[int]:
    assert service.process is not None
    return [p.pid for p in psutil.Process(service.process.pid).children()]


@pytest.mark.redis
def test_request_counter_is_exact_across_four_workers(four_workers: ServiceProcess) -> None:
    n = 240

    def one(_: int) -> int:
        # A new connection per request, so gunicorn spreads them over the workers.
        with httpx.Client(base_url=four_workers.url, headers={"Authorization": f"Bearer {DEV_KEY}"}) as client:
            return client.get("/status").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(n))) == {200}
    with four_workers.client(ADMIN_KEY) as admin:
        metrics = admin.get("/v1/metrics").text
    counted = sum(v for labels, v in _samples(metrics, "memory_http_requests_total") if labels["route"] == "/status")
    assert counted == n
    assert len(_worker_pids(four_workers)) == 4
    assert _samples(metrics, "memory_server_workers") == [({}, 4.0)]
    assert _samples(metrics, "process_resident_memory_bytes")[0][1] > 100e6

    # A worker dies: its counts stay (counters are cumulative), its live gauges go, a new worker comes.
    victim = _worker_pids(four_workers)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim in _worker_pids(four_workers) or len(_worker_pids(four_workers)) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    four_workers.wait_healthy()
    with four_workers.client(ADMIN_KEY) as admin:
        after = admin.get("/v1/metrics").text
    assert sum(v for labels, v in _samples(after, "memory_http_requests_total") if labels["route"] == "/status") == n
    in_progress = _samples(after, "memory_http_requests_in_progress")
    assert in_progress == [({}, 1.0)]  # the scrape itself, on a live worker; nothing left from the dead one


def test_label_values_stay_bounded(service: ServiceProcess, client: httpx.Client) -> None:
    ids = [add_memory(client, f"label probe {i}", f"user-{uuid.uuid4().hex}")["id"] for i in range(5)]
    for memory_id in ids:
        client.get(f"/v1/memories/{memory_id}")
    for _ in range(5):
        client.get(f"/v1/memories/{uuid.uuid4()}")
        client.get(f"/v1/no/such/{uuid.uuid4()}")
    with service.client(ADMIN_KEY) as admin:
        metrics = admin.get("/v1/metrics").text
    label_values = set(re.findall(r'="([^"]*)"', metrics))
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|user-[0-9a-f]{32}|m0sk_|mem0_")
    assert not [v for v in label_values if uuid_like.search(v)]
    routes = {labels["route"] for labels, _ in _samples(metrics, "memory_http_requests_total")}
    assert "/v1/memories/{memory_id}" in routes
    assert "<unmatched>" in routes
    assert all(r.startswith(("/", "<")) for r in routes)


def test_logs_are_json_with_context_and_without_secrets_or_content(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "logs", UNLIMITED).start()
    marker = f"secret-content-{uuid.uuid4().hex}"
    try:
        with service.client(DEV_KEY) as client:
            memory = add_memory(client, f"My diary says {marker}", "logger")
            client.get("/v1/memories/search", params={"query": marker, "user_id": "logger"})
            client.get(f"/v1/memories/{memory['id']}", headers={"X-Request-ID": "req-for-the-log"})
        with service.client("m0sk_wrong-key-in-the-log") as wrong:
            wrong.get("/status")
    finally:
        service.stop()
    text = service.logs()
    assert marker not in text
    assert DEV_KEY not in text
    assert "m0sk_wrong-key-in-the-log" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "memory_service.access"]
    assert access
    for line in access:
        assert {"request_id", "route", "status", "duration_ms", "method", "timestamp", "level"} <= set(line)
    tagged = next(line for line in access if line["request_id"] == "req-for-the-log")
    assert tagged["tenant"] == "default"
    assert tagged["route"] == "/v1/memories/{memory_id}"
    assert tagged["status"] == 200
    assert any(line["status"] == 401 for line in access)


@pytest.mark.redis
def test_traces_are_exported_over_otlp_with_the_trace_id_in_the_logs(tmp_path: Path) -> None:
    receiver = OtlpReceiver().start()
    redis_server = RedisServer(tmp_path / "redis").start()
    env = {
        **UNLIMITED,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "RATE_LIMIT_STORAGE_URI": redis_server.url,
    }
    service = ServiceProcess(tmp_path / "traces", env).start()
    try:
        with service.client(DEV_KEY) as client:
            add_memory(client, "Traced memory about Kubernetes", "tracer")
            client.get("/v1/memories/search", params={"query": "Kubernetes", "user_id": "tracer"})
        deadline = time.monotonic() + 20
        names: set[str] = set()
        while time.monotonic() < deadline:
            names = {s.name for s in receiver.spans}
            if {"memory.add", "memory.search", "embedding", "embedding.batch", "vector.insert"} <= names and any(
                s.attributes.get("db.system") == "redis" for s in receiver.spans
            ):
                break
            time.sleep(0.3)
    finally:
        service.stop()
        receiver.stop()
        redis_server.stop()
    assert {"memory.add", "memory.search", "embedding", "embedding.batch", "vector.insert", "vector.search"} <= names
    assert any(n.startswith("POST /v1/memories") for n in names)
    assert any(s.attributes.get("db.system") == "postgresql" for s in receiver.spans)
    assert any(s.attributes.get("db.system") == "redis" for s in receiver.spans)
    assert {s.service for s in receiver.spans} == {"memory-service"}
    add_span = next(s for s in receiver.spans if s.name == "memory.add")
    in_trace = {s.name for s in receiver.spans if s.trace_id == add_span.trace_id}
    # The worker thread's spans join the request's trace (an add embeds its messages in one batch).
    assert {"embedding.batch", "vector.insert"} <= in_trace
    logged = {json.loads(line).get("trace_id") for line in service.logs().splitlines() if line.startswith("{")}
    assert add_span.trace_id in logged
