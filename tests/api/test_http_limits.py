"""Reading a request is bounded and every answer is the envelope, even uvicorn's own (issue 19, defect 7).

A service of its own, with short head and body deadlines so that the slow clients here take
seconds: a slowloris client (headers one byte at a time), a body that trickles, a URL over 64 KiB,
headers over MAX_HEADER_BYTES, bytes that are not HTTP. Also: the API documents switched off.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import DEV_KEY, ServiceProcess

HEAD_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        tmp_path_factory.mktemp("http-limits"),
        {
            "REQUEST_HEADER_TIMEOUT": str(HEAD_TIMEOUT),
            "REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "MAX_HEADER_BYTES": "16384",
            "DOCS_ENABLED": "false",
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "RATE_LIMIT_BURST": "1000000",
        },
    ).start()
    yield service
    service.stop()


def _connect(service: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=HEAD_TIMEOUT + BODY_TIMEOUT + 10)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def _assert_envelope(raw: bytes, status: int, code: str) -> dict[str, str]:
    assert raw, "the server closed the connection without an answer"
    got, headers, body = _parse(raw)
    assert got == status, raw[:300]
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["timestamp"].endswith("Z")
    assert headers["content-type"] == "application/json"
    assert len(headers["x-request-id"]) == 32
    return headers


def _exchange(service: ServiceProcess, request: bytes) -> bytes:
    with _connect(service) as sock:
        sock.sendall(request)
        return _read_all(sock)


def _slowloris(service: ServiceProcess, results: list[tuple[bytes, float]]) -> None:
    """Send a request head one byte every 0.2 s, as long as the server lets us."""
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    with _connect(service) as sock:
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass
        results.append((_read_all(sock), time.monotonic() - started))


def test_slowloris_clients_are_answered_408_and_dropped_while_others_are_served(strict: ServiceProcess) -> None:
    results: list[tuple[bytes, float]] = []
    attackers = [threading.Thread(target=_slowloris, args=(strict, results)) for _ in range(20)]
    for thread in attackers:
        thread.start()
    time.sleep(0.5)
    with httpx.Client(base_url=strict.url, headers={"Authorization": f"Bearer {DEV_KEY}"}, timeout=10) as client:
        assert client.get("/health").status_code == 200  # served during the attack
        assert client.get("/v1/memories/search", params={"query": "x"}).status_code == 200
    for thread in attackers:
        thread.join(30)
    assert len(results) == 20
    for raw, elapsed in results:
        _assert_envelope(raw, 408, "REQUEST_TIMEOUT")
        assert elapsed < HEAD_TIMEOUT + 3  # not the 60 s a 260-byte head takes at this pace


def test_a_connection_that_sends_nothing_is_closed(strict: ServiceProcess) -> None:
    started = time.monotonic()
    with _connect(strict) as sock:
        assert _read_all(sock) == b""
    assert time.monotonic() - started < HEAD_TIMEOUT + 3


def test_a_trickling_body_is_answered_408(strict: ServiceProcess) -> None:
    head = (
        b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + DEV_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    started = time.monotonic()
    with _connect(strict) as sock:
        sock.sendall(head + b'{"messages": ')
        try:
            for _ in range(40):
                time.sleep(0.2)
                sock.sendall(b" ")
        except OSError:
            pass
        raw = _read_all(sock)
    headers = _assert_envelope(raw, 408, "REQUEST_TIMEOUT")
    assert headers["connection"] == "close"
    assert time.monotonic() - started < BODY_TIMEOUT + 3


def test_a_url_over_64_kib_is_414_in_the_envelope(strict: ServiceProcess) -> None:
    raw = _exchange(strict, b"GET /v1/memories/search?query=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    _assert_envelope(raw, 414, "URI_TOO_LONG")


def test_headers_over_the_limit_are_431_in_the_envelope(strict: ServiceProcess) -> None:
    raw = _exchange(strict, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    _assert_envelope(raw, 431, "HEADERS_TOO_LARGE")


@pytest.mark.parametrize(
    "request_",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"],
)
def test_unparseable_requests_are_400_in_the_envelope(strict: ServiceProcess, request_: bytes) -> None:
    _assert_envelope(_exchange(strict, request_), 400, "INVALID_REQUEST")


def test_docs_can_be_switched_off(strict: ServiceProcess) -> None:
    for path in ("/docs", "/openapi.json"):
        response = httpx.get(f"{strict.url}{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_the_worker_still_serves_after_all_this(strict: ServiceProcess) -> None:
    response = httpx.get(f"{strict.url}/health", timeout=5)
    assert response.status_code == 200
    assert "refused before the application" in strict.logs()
