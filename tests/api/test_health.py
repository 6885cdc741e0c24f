"""Health (no auth, cached, fast even when a dependency hangs) and status (auth, details)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from memory_service import __version__

from tests.support.api import add_memory, assert_error
from tests.support.server import DEV_KEY, ServiceProcess, frozen_postgres


def test_health_needs_no_key_and_reports_dependencies(service: ServiceProcess) -> None:
    for path in ("/health", "/v1/health"):
        response = httpx.get(f"{service.url}{path}")
        assert response.status_code == 200
        data = response.json()["data"]
        assert data["status"] == "ok"
        assert data["version"] == __version__
        assert data["dependencies"]["postgres"]["up"] is True
        assert response.headers["x-request-id"]
        assert "x-ratelimit-limit" not in response.headers


def test_status_reports_profile_providers_and_count(client: httpx.Client) -> None:
    add_memory(client, "counted memory")
    for path in ("/status", "/v1/status"):
        data = client.get(path).json()["data"]
        assert data["version"] == __version__
        assert data["profile"] == "embedded"
        assert data["environment"] == "development"
        assert data["uptime_seconds"] > 0
        assert data["providers"]["embedder"] == "onnx-minilm"
        assert data["providers"]["vector_store"].startswith("pgvector")
        assert data["providers"]["llm"] == "none"
        assert data["dependencies"]["postgres"]["latency_ms"] is not None
        assert data["memory_count"] == 1


def test_a_hanging_database_gives_fast_health_and_503_then_recovers(tmp_path: Path) -> None:
    service = ServiceProcess(
        tmp_path / "hang", {"DB_TIMEOUT": "2", "REQUEST_TIMEOUT": "3", "HEALTH_INTERVAL": "0.5"}
    ).start()
    try:
        with service.client(DEV_KEY) as client:
            add_memory(client, "before the outage", "h")
            with frozen_postgres(service.data_dir):
                started = time.monotonic()
                failed = client.post(
                    "/v1/memories", json={"messages": [{"role": "user", "content": "during"}], "user_id": "h"}
                )
                elapsed = time.monotonic() - started
                error = assert_error(failed, 503, "SERVICE_UNAVAILABLE")
                assert error["details"]["dependency"] == "postgres"
                assert elapsed < 5
                assert failed.headers["retry-after"]
                deadline = time.monotonic() + 10
                while True:
                    started = time.monotonic()
                    health = httpx.get(f"{service.url}/health", timeout=5)
                    assert time.monotonic() - started < 0.5
                    assert health.status_code == 200
                    if health.json()["data"]["status"] == "degraded":
                        break
                    assert time.monotonic() < deadline, "health never reported the frozen database"
                    time.sleep(0.2)
                assert health.json()["data"]["dependencies"]["postgres"]["up"] is False
            deadline = time.monotonic() + 20
            while True:
                response = client.get("/v1/memories/search", params={"query": "outage", "user_id": "h"})
                if response.status_code == 200:
                    break
                assert time.monotonic() < deadline, response.text
                time.sleep(0.5)
            assert [m["content"] for m in response.json()["data"]["memories"]] == ["before the outage"]
            deadline = time.monotonic() + 10
            while httpx.get(f"{service.url}/health").json()["data"]["status"] != "ok":
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        service.stop()


def test_the_service_opens_no_connection_but_to_its_backends(tmp_path: Path) -> None:
    """mem0's telemetry and notices stay off: any outbound HTTP would have gone through this proxy."""
    import socketserver
    import threading

    seen: list[bytes] = []

    class Recorder(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            seen.append(self.request.recv(1024))

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Recorder) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        address = f"http://127.0.0.1:{proxy.server_address[1]}"
        env = {"HTTP_PROXY": address, "HTTPS_PROXY": address, "ALL_PROXY": address, "NO_PROXY": ""}
        service = ServiceProcess(tmp_path / "quiet", env).start()
        try:
            with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {DEV_KEY}"}) as client:
                add_memory(client, "A memory that must not leave the machine", "quiet")
                client.get("/v1/memories/search", params={"query": "memory", "user_id": "quiet"})
                client.get("/v1/memories/user/quiet")
        finally:
            service.stop()
        proxy.shutdown()
    assert seen == []


def test_drain_file_turns_health_into_503_draining_and_back(tmp_path: Path) -> None:
    """What a rolling deploy does before stopping a host: the balancer sees 503 and stops routing."""
    drain = tmp_path / "DRAIN"
    service = ServiceProcess(tmp_path / "svc", {"DRAIN_FILE": str(drain)}).start()
    try:
        assert httpx.get(f"{service.url}/health").status_code == 200
        drain.touch()
        draining = httpx.get(f"{service.url}/health")
        assert draining.status_code == 503
        assert draining.json()["data"]["status"] == "draining"
        with service.client(DEV_KEY) as client:  # a request already routed here is still served
            assert client.get("/status").status_code == 200
        drain.unlink()
        assert httpx.get(f"{service.url}/health").json()["data"]["status"] == "ok"
    finally:
        service.stop()
