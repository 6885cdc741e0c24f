"""A real webhook receiver on a loopback port that verifies every signature with `standardwebhooks`.

Each webhook under test posts to its own path (`/hooks/<name>`); the test tells the receiver
that path's secret(s) once the service has shown them. Every request is recorded with its
verdict: for each secret registered for the path, whether `standardwebhooks.Webhook(secret)
.verify(body, headers)` accepted it. What the receiver answers is switchable at run time: a
status (200, or 500 to refuse), or `stop()` (connections refused) and `start()` again on the
same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.server import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    answered: int
    verified: dict[str, bool]  # secret -> did it verify
    at: float = field(default_factory=time.monotonic)

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        receiver = self.server.receiver
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = {}
        for secret in receiver.secrets.get(self.path, []):
            try:
                Webhook(secret).verify(raw, headers)
                verified[secret] = True
            except WebhookVerificationError:
                verified[secret] = False
        status = receiver.status_for(self.path)
        receiver.record(Received(self.path, headers, raw, status, verified))
        answer = receiver.answer_body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", port), _Handler)


class Receiver:
    """The receiving end of the webhooks of one test module."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.secrets: dict[str, list[str]] = {}
        self.status = 200
        self.statuses: dict[str, int] = {}
        self.answer_body = "ok"
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks/{name}"

    @staticmethod
    def path(name: str) -> str:
        return f"/hooks/{name}"

    def start(self) -> Receiver:
        self._server = _Server(self.port, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: from now on connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def trust(self, name: str, *secrets: str) -> None:
        self.secrets[self.path(name)] = list(secrets)

    def status_for(self, path: str) -> int:
        return self.statuses.get(path, self.status)

    def record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def received(self, name: str | None = None) -> list[Received]:
        with self._lock:
            items = list(self._received)
        return items if name is None else [r for r in items if r.path == self.path(name)]

    def delivered(self, name: str) -> list[Received]:
        """Requests answered 2xx (the ones the service counts as delivered)."""
        return [r for r in self.received(name) if 200 <= r.answered < 300]

    def wait_for(
        self, name: str, predicate: Callable[[list[Received]], bool], timeout: float = 30.0, what: str = ""
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            items = self.delivered(name)
            if predicate(items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or 'deliveries'}: {len(items)}")
            time.sleep(0.05)
