"""A worker that stops on purpose costs no request (issue 19, defect 8).

uvicorn used to close every idle keep-alive connection the moment its worker began to stop
(recycled by GUNICORN_MAX_REQUESTS, replaced on SIGHUP, or SIGTERM): a client whose next request
was already on the way got a reset. Now the next request on such a connection is answered, with
`Connection: close`. These tests hold a keep-alive connection on a raw socket, let the worker
begin to stop while the connection is idle, then send one more request on it: it must be served.
(The fault suite, tests/chaos, counts failures under steady add load across recycles.)
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.redis import RedisServer
from tests.support.server import ServiceProcess


class KeepAlive:
    """One HTTP/1.1 connection, used request after request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def request(self, path: str = "/health") -> tuple[int, dict[str, str]] | None:
        """Status and headers of the answer, or None if the server closed the connection instead."""
        try:
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            while b"\r\n\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return None
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        self.buffer = rest[length:]
        return int(lines[0].split()[1]), headers

    def close(self) -> None:
        self.sock.close()


def _until_drained(connections: list[KeepAlive], within: float = 60.0) -> list[str]:
    """Send requests at a leisurely pace (the worker stops while the connections are idle) until
    each connection has been answered with `Connection: close`; 'served' or 'dropped' per connection."""
    results: dict[int, str] = {}
    deadline = time.monotonic() + within
    while len(results) < len(connections) and time.monotonic() < deadline:
        for index, connection in enumerate(connections):
            if index in results:
                continue
            answer = connection.request()
            if answer is None:
                results[index] = "dropped"
            elif answer[1].get("connection", "").lower() == "close":
                assert answer[0] == 200
                results[index] = "served"
        time.sleep(0.3)
    return [results.get(i, "never recycled") for i in range(len(connections))]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def test_a_recycled_worker_answers_the_next_request_on_an_idle_connection(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        "GUNICORN_MAX_REQUESTS": "20",
        "GUNICORN_MAX_REQUESTS_JITTER": "0",
        "RATE_LIMIT_STORAGE_URI": redis_server.url,
    }
    service = ServiceProcess(tmp_path / "recycle", env, workers=2).start()
    connections = [KeepAlive(service.port) for _ in range(2)]
    try:
        assert _until_drained(connections) == ["served", "served"]
    finally:
        for connection in connections:
            connection.close()
        service.stop()
    assert "Maximum request limit" in service.logs()


def test_sighup_replaces_workers_without_dropping_a_request(tmp_path: Path, redis_server: RedisServer) -> None:
    env = {"RATE_LIMIT_STORAGE_URI": redis_server.url}
    service = ServiceProcess(tmp_path / "hup", env, workers=2).start()
    assert service.process is not None
    connections = [KeepAlive(service.port) for _ in range(3)]
    try:
        for connection in connections:
            assert connection.request() is not None
        service.process.send_signal(signal.SIGHUP)
        assert _until_drained(connections) == ["served", "served", "served"]
        assert httpx.get(f"{service.url}/health", timeout=30).status_code == 200  # the new workers serve
    finally:
        for connection in connections:
            connection.close()
        service.stop()


def test_sigterm_answers_a_request_on_an_idle_connection_then_exits(tmp_path: Path) -> None:
    """The single-process server drains the same way, then stops."""
    service = ServiceProcess(tmp_path / "term", {}).start()
    assert service.process is not None
    connection = KeepAlive(service.port)
    try:
        assert connection.request() is not None
        os.kill(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the listener closes: the worker is stopping
            try:
                socket.create_connection(("127.0.0.1", service.port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.05)
        answer = connection.request()
        assert answer is not None, "the idle connection was closed under a request"
        assert answer[0] == 200
        assert answer[1]["connection"].lower() == "close"
    finally:
        connection.close()
    assert service.process.wait(30) in (0, -signal.SIGTERM)
